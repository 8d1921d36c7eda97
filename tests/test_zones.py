"""nameserver.zones: zone files load into compiled zones, and every problem is named by file and
line (by dnspython's reader, which reads every file the fast reader does not vouch for)."""

from pathlib import Path

import dns.name
import dns.rdataset
import dns.rdatatype
import pytest

from nameserver.config import ZoneSettings
from nameserver.lookup import ZoneIndex
from nameserver.zones import HostedZone, ZoneError, ZoneSet, load_zone, load_zones
from nameserver.zonestore import ZoneData

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = dns.name.from_text("example.com.")

APEX = """\
$TTL 300
@       SOA  ns hostmaster 7 7200 3600 1209600 300
@       NS   ns
ns      A    192.0.2.53
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def settings(path: Path, origin: dns.name.Name = EXAMPLE) -> ZoneSettings:
    return ZoneSettings(origin, path)


def rdataset(hosted: HostedZone, name: str, rdtype: str) -> dns.rdataset.Rdataset | None:
    """What a lookup finds in the loaded zone."""
    return ZoneIndex(hosted.zone).rdataset(
        dns.name.from_text(name), dns.rdatatype.from_text(rdtype)
    )


def errors(zone_file: Path) -> list[str]:
    with pytest.raises(ZoneError) as caught:
        load_zone(settings(zone_file))
    assert str(caught.value) == "\n".join(caught.value.errors)
    return caught.value.errors


def test_example_zone_loads() -> None:
    path = REPO / "zones" / "example.com.zone"
    hosted = load_zone(settings(path))
    assert hosted.origin == EXAMPLE
    assert hosted.file == path
    assert hosted.serial == 2026112501
    assert hosted.records == 16
    www = rdataset(hosted, "www.example.com.", "AAAA")
    assert [rdata.to_text() for rdata in www] == ["2001:db8::80"]
    assert rdataset(hosted, "example.com.", "SOA").ttl == 3600


def test_names_are_kept_absolute(tmp_path: Path) -> None:
    hosted = load_zone(settings(write(tmp_path / "z", APEX)))
    assert all(name.is_absolute() for name in hosted.zone.names())
    [ns] = rdataset(hosted, "example.com.", "NS")
    assert ns.target == dns.name.from_text("ns.example.com.")


def test_include_is_relative_to_the_including_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone_file = write(tmp_path / "zones" / "example.com.zone", APEX + "$INCLUDE hosts/www.inc\n")
    write(tmp_path / "zones" / "hosts" / "www.inc", "www A 192.0.2.80\n$INCLUDE mail.inc\n")
    write(tmp_path / "zones" / "hosts" / "mail.inc", "mail A 192.0.2.25\n")
    # Decoys where dnspython itself would look: relative to the working directory.
    cwd = tmp_path / "cwd"
    write(cwd / "hosts" / "www.inc", "decoy A 192.0.2.66\n")
    write(cwd / "mail.inc", "decoy A 192.0.2.66\n")
    monkeypatch.chdir(cwd)
    hosted = load_zone(settings(zone_file))
    assert rdataset(hosted, "www.example.com.", "A") is not None
    assert rdataset(hosted, "mail.example.com.", "A") is not None
    assert rdataset(hosted, "decoy.example.com.", "A") is None


def test_include_with_origin(tmp_path: Path) -> None:
    zone_file = write(
        tmp_path / "z", APEX + "$INCLUDE lab.inc lab.example.com.\nafter A 192.0.2.2\n"
    )
    write(tmp_path / "lab.inc", "host A 192.0.2.1\n")
    hosted = load_zone(settings(zone_file))
    assert rdataset(hosted, "host.lab.example.com.", "A") is not None
    assert rdataset(hosted, "after.example.com.", "A") is not None


def test_missing_include_names_the_including_line(tmp_path: Path) -> None:
    zone_file = write(tmp_path / "z", APEX + "$INCLUDE absent.inc\n")
    assert errors(zone_file) == [
        f"{zone_file}:5: cannot read {tmp_path / 'absent.inc'}: No such file or directory"
    ]


def test_error_in_an_included_file_names_that_file_and_line(tmp_path: Path) -> None:
    zone_file = write(tmp_path / "z", APEX + "$INCLUDE sub/hosts.inc\n")
    included = write(tmp_path / "sub" / "hosts.inc", "; hosts\nok A 192.0.2.1\nbad A 192.0.2\n")
    assert errors(zone_file) == [f"{included}:3: Text input is malformed."]


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        # The bad token ends the line: dnspython itself would say line 6.
        ("www A 192.0.2", "Text input is malformed."),
        ("www A 192.0.2.1 192.0.2.2", 'expected EOL or EOF, got 3 "192.0.2.2"'),
        ("www BOGUS 1", "unknown rdatatype 'BOGUS'"),
        ("www CH A 192.0.2.1", "RR class is not zone's class"),
        ("www SOA ns hostmaster 1 2 3 4 5", "add() has non-origin SOA"),
        ("www.example.net. A 192.0.2.1", "www.example.net. is outside the zone example.com."),
    ],
)
def test_bad_record_names_its_line(tmp_path: Path, record: str, problem: str) -> None:
    zone_file = write(tmp_path / "z", APEX + "\n" + record + "\nlast A 192.0.2.9\n")
    [error] = errors(zone_file)
    assert error == f"{zone_file}:6: {problem}"


def test_error_in_a_record_over_several_lines_names_its_first_line(tmp_path: Path) -> None:
    zone_file = write(tmp_path / "z", APEX + 'txt TXT (\n  "one"\n  "two"\n')
    assert errors(zone_file) == [f"{zone_file}:5: unbalanced parentheses"]


def test_error_on_the_last_line_without_newline(tmp_path: Path) -> None:
    zone_file = write(tmp_path / "z", APEX + "www A 192.0.2")
    assert errors(zone_file) == [f"{zone_file}:5: Text input is malformed."]


def test_text_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    zone_file = tmp_path / "z"
    zone_file.write_bytes(APEX.encode() + b'txt TXT "caf\xe9"\n')
    assert errors(zone_file) == [f"{zone_file}:5: not UTF-8 text"]


def test_unreadable_zone_file_has_no_line(tmp_path: Path) -> None:
    assert errors(tmp_path / "absent.zone") == [
        f"{tmp_path / 'absent.zone'}: cannot read: No such file or directory"
    ]


def test_no_soa_and_no_ns_at_the_apex(tmp_path: Path) -> None:
    zone_file = write(tmp_path / "z", "; no apex\n$TTL 300\nwww A 192.0.2.1\n")
    assert errors(zone_file) == [
        f"{zone_file}:3: no SOA record at the zone apex example.com.",
        f"{zone_file}:3: no NS record at the zone apex example.com.",
    ]


def test_no_ns_at_the_apex_points_at_the_soa(tmp_path: Path) -> None:
    zone_file = write(tmp_path / "z", "$TTL 300\n\n@ SOA ns hm 1 2 3 4 5\nns.example.com. NS ns\n")
    assert errors(zone_file) == [f"{zone_file}:3: no NS record at the zone apex example.com."]


def test_empty_zone_file(tmp_path: Path) -> None:
    zone_file = write(tmp_path / "z", "")
    assert errors(zone_file) == [
        f"{zone_file}:1: no SOA record at the zone apex example.com.",
        f"{zone_file}:1: no NS record at the zone apex example.com.",
    ]


@pytest.mark.parametrize(
    "records",
    [
        "www A 192.0.2.1\nwww CNAME ns\n",
        "www CNAME ns\nwww A 192.0.2.1\n",
        "www CNAME ns\n     MX 10 ns\n",
    ],
)
def test_cname_and_other_data_names_the_second_record(tmp_path: Path, records: str) -> None:
    zone_file = write(tmp_path / "z", APEX + records)
    assert errors(zone_file) == [f"{zone_file}:6: www.example.com. has a CNAME and other data"]


def test_cname_beside_dnssec_records_is_allowed(tmp_path: Path) -> None:
    zone_file = write(tmp_path / "z", APEX + "www CNAME ns\nwww NSEC ns CNAME NSEC\n")
    assert load_zone(settings(zone_file)).records == 5


@pytest.mark.parametrize(
    ("records", "problem"),
    [
        ("ftp CNAME ns\nftp CNAME www\n", "ftp.example.com. has a second CNAME record"),
        ("@ SOA ns hostmaster 8 7200 3600 1209600 300\n", "example.com. has a second SOA record"),
    ],
)
def test_a_second_singleton_record_is_refused(tmp_path: Path, records: str, problem: str) -> None:
    zone_file = write(tmp_path / "z", APEX + records)
    line = APEX.count("\n") + records.count("\n")
    assert errors(zone_file) == [f"{zone_file}:{line}: {problem}; only one is allowed"]


def test_a_repeated_identical_record_is_merged(tmp_path: Path) -> None:
    zone_file = write(tmp_path / "z", APEX + "ftp CNAME ns\nftp CNAME ns\n")
    assert load_zone(settings(zone_file)).records == 4


def test_every_record_outside_the_zone_is_reported(tmp_path: Path) -> None:
    zone_file = write(
        tmp_path / "z",
        APEX
        + "www.example.net. A 192.0.2.1\n"
        + "in A 192.0.2.2\n"
        + "$ORIGIN example.org.\n"
        + "mail A 192.0.2.3\n"
        + "$GENERATE 1-3 host$ A 192.0.2.$\n",
    )
    assert errors(zone_file) == [
        f"{zone_file}:5: www.example.net. is outside the zone example.com.",
        f"{zone_file}:8: mail.example.org. is outside the zone example.com.",
        f"{zone_file}:9: host1.example.org. is outside the zone example.com.",
    ]


def test_load_zones_reports_the_problems_of_every_zone(tmp_path: Path) -> None:
    good = write(tmp_path / "good.zone", APEX)
    first = write(tmp_path / "first.zone", APEX + "www A nowhere\n")
    second = write(tmp_path / "second.zone", "$TTL 60\n")
    with pytest.raises(ZoneError) as caught:
        load_zones([settings(first), settings(good, dns.name.from_text("good.")), settings(second)])
    assert caught.value.errors == [
        f"{first}:5: Text input is malformed.",
        f"{second}:1: no SOA record at the zone apex example.com.",
        f"{second}:1: no NS record at the zone apex example.com.",
    ]


def test_load_zones_returns_a_zone_set(tmp_path: Path) -> None:
    child = dns.name.from_text("lab.example.com.")
    zones = load_zones(
        [
            settings(write(tmp_path / "parent", APEX)),
            settings(write(tmp_path / "child", APEX.replace("ns  ", "ns.lab.example.com.")), child),
        ]
    )
    assert [hosted.origin for hosted in zones] == [EXAMPLE, child]
    assert zones.find(dns.name.from_text("host.lab.example.com.")).origin == child


def hosted(origin: str) -> HostedZone:
    name = dns.name.from_text(origin)
    empty = ZoneData(name, {}, {}, (), (), (), (), (), 1, 0)
    return HostedZone(name, empty, Path(f"/zones/{origin}zone"), 1, 0)


@pytest.fixture
def zone_set() -> ZoneSet:
    return ZoneSet([hosted("lab.example.com."), hosted("example.com."), hosted("example.net.")])


@pytest.mark.parametrize(
    ("qname", "origin"),
    [
        ("example.com.", "example.com."),
        ("www.example.com.", "example.com."),
        ("lab.example.com.", "lab.example.com."),
        ("a.b.lab.example.com.", "lab.example.com."),
        ("WWW.Lab.EXAMPLE.com.", "lab.example.com."),
        ("xlab.example.com.", "example.com."),
        ("mail.Example.NET.", "example.net."),
    ],
)
def test_find_picks_the_closest_enclosing_zone(zone_set: ZoneSet, qname: str, origin: str) -> None:
    found = zone_set.find(dns.name.from_text(qname))
    assert found is not None
    assert found.origin == dns.name.from_text(origin)


@pytest.mark.parametrize("qname", [".", "com.", "example.org.", "com.example.", "ample.com."])
def test_find_outside_every_zone(zone_set: ZoneSet, qname: str) -> None:
    assert zone_set.find(dns.name.from_text(qname)) is None


def test_a_hosted_root_zone_encloses_everything() -> None:
    zones = ZoneSet([hosted("."), hosted("example.com.")])
    assert zones.find(dns.name.from_text("example.org.")).origin == dns.name.root
    assert zones.find(dns.name.from_text("www.example.com.")).origin == EXAMPLE


def test_zone_set_iterates_in_origin_order(zone_set: ZoneSet) -> None:
    assert len(zone_set) == 3
    assert [str(hosted.origin) for hosted in zone_set] == [
        "example.com.",
        "lab.example.com.",
        "example.net.",
    ]


def test_zone_set_refuses_an_origin_twice() -> None:
    with pytest.raises(ValueError, match="hosted twice"):
        ZoneSet([hosted("example.com."), hosted("EXAMPLE.COM.")])


def test_soa_type_is_what_serial_comes_from(tmp_path: Path) -> None:
    hosted_zone = load_zone(settings(write(tmp_path / "z", APEX)))
    [soa] = rdataset(hosted_zone, "example.com.", "SOA")
    assert hosted_zone.serial == soa.serial == 7
