#!/bin/sh
# How the signed zones of the conformance suite were made, once, with Debian 12's ldnsutils 1.8.3
# and bind9-utils 9.18 (apt-get install ldnsutils bind9-utils). CI does not run this: it serves
# the committed *.signed files. ldns-signzone -p only sets the opt-out flag and still covers the
# insecure delegations, so the opt-out zone is signed with BIND's dnssec-signzone -A, which
# leaves them out of the NSEC3 chain (RFC 5155 §6).
# Running it again makes new keys only where keys/ has none, and new signatures (the zone
# files change, the answers' shape does not).
#
#   nsec.test.    NSEC,                     ECDSAP256SHA256 (13), KSK + ZSK
#   nsec3.test.   NSEC3 SHA-1, 0 iterations, no salt (RFC 9276), RSASHA256 (8) 2048-bit KSK + ZSK
#   optout.test.  NSEC3 opt-out, 0 iterations, no salt,          ED25519 (15) KSK + ZSK
#
# Each zone has a delegation with DS (secure.<zone>): its DS comes from a KSK made for the
# child, which is not served here. Signatures are valid from 2024-01-01 to 2044-01-01.
set -eu
cd "$(dirname "$0")"
mkdir -p keys
INCEPTION=20240101000000
EXPIRATION=20440101000000

# keygen ZONE ALGORITHM BITS -k|"": print the base name of the zone's KSK (-k) or ZSK, making
# it only if keys/ has none.
keygen() {
    zone=$1 alg=$2 bits=$3 ksk=$4
    flags=256
    [ "$ksk" = "-k" ] && flags=257
    existing=$(grep -l "DNSKEY[[:space:]]*$flags " keys/K"$zone"+*.key 2>/dev/null | head -n1 || true)
    if [ -n "$existing" ]; then
        basename "$existing" .key
        return
    fi
    (cd keys && ldns-keygen -r /dev/urandom -a "$alg" ${bits:+-b "$bits"} $ksk "$zone")
}

# sign ZONE ALGORITHM BITS NSEC3-OPTIONS...
sign() {
    zone=$1 alg=$2 bits=$3
    shift 3
    ksk=$(keygen "$zone." "$alg" "$bits" -k)
    zsk=$(keygen "$zone." "$alg" "$bits" "")
    child=$(keygen "secure.$zone." "$alg" "$bits" -k)
    # The unsigned source plus the child's DS, then signed.
    { cat "$zone.zone"; grep -v '^;' "keys/$child.ds"; } >"$zone.zone.unsigned"
    ldns-signzone -i "$INCEPTION" -e "$EXPIRATION" -o "$zone." -f "$zone.zone.signed" "$@" \
        "$zone.zone.unsigned" "keys/$ksk" "keys/$zsk"
    rm "$zone.zone.unsigned"
}

# bind_sign ZONE ALGORITHM: the same with BIND's tools, NSEC3 opt-out.
bind_sign() {
    zone=$1 alg=$2
    for name in "$zone." "secure.$zone."; do
        for flags in 257 256; do
            [ "$name" = "secure.$zone." ] && [ "$flags" = 256 ] && continue
            if ! grep -qs "DNSKEY $flags " keys/K"$name"+*.key; then
                ksk=""
                [ "$flags" = 257 ] && ksk="-f KSK"
                dnssec-keygen -q -K keys -a "$alg" $ksk "$name" >/dev/null
            fi
        done
    done
    child=$(basename "$(grep -l "DNSKEY 257 " keys/K"secure.$zone."+*.key)" .key)
    { cat "$zone.zone"; dnssec-dsfromkey -2 "keys/$child.key"; } >"$zone.zone.unsigned"
    dnssec-signzone -q -K keys -S -x -3 - -H 0 -A -s "$INCEPTION" -e "$EXPIRATION" \
        -o "$zone." -f "$zone.zone.signed" "$zone.zone.unsigned"
    rm "$zone.zone.unsigned" "dsset-$zone."  # the DS of the zone itself: no parent here
}

sign nsec.test ECDSAP256SHA256 ""
sign nsec3.test RSASHA256 2048 -n -a 1 -t 0
bind_sign optout.test ED25519
