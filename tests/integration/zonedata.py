"""What tests/integration/zones/example.com.zone contains, as the tests expect to see it."""

from __future__ import annotations

ZONE = "example.com."
SOA_NAME = ZONE
NS = {"ns1.example.com.", "ns2.example.com."}

WWW = "www.example.com."
WWW_A = {"192.0.2.80"}
WWW_AAAA = {"2001:db8::80"}

CNAME = "ftp.example.com."  # -> www
MISSING = "nope.example.com."

DELEGATION = "lab.example.com."
BELOW_DELEGATION = "host.lab.example.com."
DELEGATION_NS = {"ns.lab.example.com."}
GLUE = "ns.lab.example.com."
GLUE_A = {"192.0.2.153"}

BIG = "big.example.com."
BIG_A = {f"198.51.100.{i}" for i in range(1, 51)}  # ~850 bytes: > 512, < 1232

OUTSIDE = "www.example.org."  # no zone of ours: REFUSED
