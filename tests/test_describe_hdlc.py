"""`meterlink decode hdlc`'s describer: read_capture, describe_capture, describe_apdu.

The two sessions of seed 002 ch. 4 (tests/data/kamstrup_hdlc.json) are described frame by frame;
the seed's own text of ch. 4.1 is read as printed. Damaged frames, noise, broken frames and HDLC
segmentation are described rather than dropped, the LLS password never shows, and property tests
feed random bytes and mutated seed frames to check that nothing raises and all is strict JSON.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from meterlink.protocols.dlms.acse import (
    LLS_CONFORMANCE,
    MECHANISM_LLS,
    Aare,
    Aarq,
    AssociationResult,
    ConfirmedServiceError,
    DiagnosticSource,
    InitiateRequest,
    ReleaseRequest,
)
from meterlink.protocols.dlms.axdr import Data, DataTag, octet_string
from meterlink.protocols.dlms.describe import describe_apdu, describe_capture, read_capture
from meterlink.protocols.dlms.xdlms import (
    ActionRequestNormal,
    ActionResponseNormal,
    ActionResult,
    AttributeDescriptor,
    DataAccessResult,
    ExceptionResponse,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithList,
    MethodDescriptor,
    ServiceError,
    SetRequestNormal,
    SetResponseNormal,
    StateError,
)
from meterlink.protocols.hdlc import (
    LLC_REQUEST,
    LLC_RESPONSE,
    Address,
    Control,
    Frame,
    FrameType,
    split_information,
)
from meterlink.protocols.obis import Obis

from kamstrup_session import SEED as VECTORS


def session_frames(name: str) -> list[bytes]:
    return [bytes.fromhex(exchange[key]) for exchange in VECTORS[name]["exchanges"] for key in ("request", "response")]


PUBLIC = session_frames("public_association")
LLS = session_frames("lls_profile_blocks")
BOUNDED = settings(max_examples=200, deadline=None)

SEED_4_1 = """\
### 4.1 Read Meter number without security

#### Connect:

--> 7E A0 20 03 21 93 7D D9 81 80 14 05 02 **02 00** 06 02 **02 00** 07 04 00 00 00 01 08 04 00 00 00 01 6F EF 7E

<-- 7E A0 20 21 03 73 73 98 81 80 14 05 02 **02 00** 06 02 **00 80** 07 04 00 00 00 01 08 04 00 00 00 01 19 D4 7E

#### Association:

--> 7E A0 2B 03 21 10 FB AF E6 E6 00 60 1D A1 09 06 07 60 85 74 05 08 01 01 BE 10 04 0E 01 00 00 00 06 5F 1F
04 00 00 18 1D FF FF 5F AF 7E

<-- 7E A0 37 21 03 30 6C 7C E6 E7 00 61 29 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 **00** A3 05 A1 03 02 01
00 BE 10 04 0E 08 00 06 5F 1F 04 00 00 10 10 00 7D 00 07 7D EE 7E

#### Request Data:

--> 7E A0 19 03 21 32 6F D8 E6 E6 00 C0 01 81 00 01 **01 01 00 00 01 FF 02** 00 A8 E3 7E

<-- 7E A0 15 21 03 52 5D 8A E6 E7 00 C4 01 81 00 06 **00 BC 61 4F** E4 36 7E

#### Disconnect:

--> 7E A0 07 03 21 53 03 C7 7E

<-- 7E A0 07 21 03 73 01 40 7E
"""
"""Seed 002 ch. 4.1 as printed (headings, arrows, bold bytes, wrapped lines), without its prose."""


def apdus(entries: list[dict]) -> list[dict]:
    return [entry["information"]["apdu"] for entry in entries if "apdu" in entry.get("information", {})]


def i_frame(source: Address, destination: Address, information: bytes, ns: int = 0, nr: int = 0,
            segmented: bool = False) -> bytes:
    return Frame(destination, source, Control(FrameType.I, True, ns, nr), information, segmented).to_bytes()


CLIENT, METER = Address.client(16), Address.server(1)


# -- the seed's sessions -------------------------------------------------------------------------


def test_public_session_frames_check_and_have_their_types_and_sequence_numbers():
    entries = describe_capture(b"".join(PUBLIC))
    assert [entry["control"]["frame"] for entry in entries] == ["SNRM", "UA", "I", "I", "I", "I", "DISC", "UA"]
    assert [entry["frame"] for entry in entries] == list(range(1, 9))
    assert [entry["offset"] for entry in entries] == [sum(map(len, PUBLIC[:n])) for n in range(8)]
    assert [entry["hex"] for entry in entries] == [frame.hex().upper() for frame in PUBLIC]
    assert ["hcs" in entry for entry in entries] == [True] * 6 + [False] * 2  # DISC, UA: no information field
    assert all(entry["fcs"]["ok"] and entry.get("hcs", {"ok": True})["ok"] for entry in entries)
    assert not any("error" in entry for entry in entries)
    sequence = [(entry["control"]["ns"], entry["control"]["nr"]) for entry in entries if entry["control"]["frame"] == "I"]
    assert sequence == [(0, 0), (0, 1), (1, 1), (1, 2)]
    assert entries[0]["destination"] == {"address": "1", "bytes": 1}
    assert entries[0]["source"] == {"address": "16", "bytes": 1}
    assert entries[0]["format"] == {"type": 3, "segmented": False, "length": 32}


def test_frames_without_information_have_an_fcs_only():
    disc, ua = describe_capture(b"".join(PUBLIC[-2:]))
    assert disc["control"] == {"byte": "0x53", "frame": "DISC", "poll_final": True}
    assert disc["fcs"] == {"value": "0xC703", "ok": True}  # sent as 03 C7, least significant byte first
    assert "hcs" not in disc and "information" not in disc and "hcs" not in ua


def test_lls_session_sequence_numbers_and_block_transfer():
    entries = describe_capture(b"".join(LLS))
    assert len(entries) == 12 and not any("error" in entry for entry in entries)
    next_request = entries[8]
    assert next_request["control"] == {"byte": "0xFE", "frame": "I", "poll_final": True, "ns": 7, "nr": 7}
    assert entries[9]["control"] == {"byte": "0x1E", "frame": "I", "poll_final": True, "ns": 7, "nr": 0}
    described = apdus(entries)
    blocks = [apdu for apdu in described if apdu["type"] == "GET-Response-With-Datablock"]
    assert [(block["block_number"], block["last_block"], block["raw_data_length"]) for block in blocks] == [
        (1, False, 0x1CE), (2, False, 0x1CC), (7, True, 0x5C)]
    assert [apdu["block_number"] for apdu in described if apdu["type"] == "GET-Request-Next"] == [1, 6]


def test_snrm_and_ua_parameters():
    snrm, ua = describe_capture(b"".join(PUBLIC[:2]))
    assert snrm["hcs"] == {"value": "0xD97D", "ok": True}
    assert snrm["information"] == {"length": 23, "parameters": {"max_info_tx": 512, "max_info_rx": 512,
                                                                "window_tx": 1, "window_rx": 1}}
    assert ua["control"]["frame"] == "UA"
    assert ua["information"]["parameters"] == {"max_info_tx": 512, "max_info_rx": 128, "window_tx": 1, "window_rx": 1}


def test_public_aarq_and_aare():
    aarq, aare = apdus(describe_capture(b"".join(PUBLIC[2:4])))
    assert aarq == {"type": "AARQ", "application_context": "logical-name, no ciphering", "dlms_version": 6,
                    "conformance": ["block-transfer-with-get-or-read", "block-transfer-with-set-or-write", "get", "set",
                                    "selective-access", "action"],
                    "max_receive_pdu_size": 65535}
    assert aare == {"type": "AARE", "application_context": "logical-name, no ciphering", "result": "accepted",
                    "diagnostic": "null", "dlms_version": 6, "conformance": ["block-transfer-with-get-or-read", "get"],
                    "max_receive_pdu_size": 125, "vaa_name": "0x0007"}


def test_lls_aarq_never_shows_the_password():
    entries = describe_capture(b"".join(LLS))
    aarq = entries[2]["information"]["apdu"]
    assert aarq["mechanism"] == "low level security (password)"
    assert aarq["calling_authentication_value"] == "5 bytes, not shown"
    text = json.dumps(entries).lower()
    assert "12345" not in text and "3132333435" not in text
    assert "AC07" + "**" * 7 + "BE10" in entries[2]["hex"]  # the rest of the frame is shown as sent
    assert entries[2]["information"]["llc"] == "E6E600" and entries[2]["information"]["direction"] == "to meter"
    granted = entries[3]["information"]["apdu"]["conformance"]
    assert granted == ["block-transfer-with-get-or-read", "get", "set", "selective-access"]


def test_get_normal_request_and_response():
    request, response = apdus(describe_capture(b"".join(PUBLIC[4:6])))
    assert request == {"type": "GET-Request-Normal", "invoke_id_and_priority": "0x81", "attribute": "1:1-1:0.0.1.255:2"}
    assert response == {"type": "GET-Response-Normal", "invoke_id_and_priority": "0x81", "result": 12345679,
                        "data_type": "double-long-unsigned"}


def test_get_with_selective_access_by_range():
    (request,) = apdus(describe_capture(LLS[4]))
    assert request["attribute"] == "7:1-1:99.1.0.255:2"
    assert request["access"] == {"selector": 1, "parameters": [[8, "0001010000ff", 2, 0], "2013-10-25T00:00:00",
                                                               "2013-10-26T00:00:00", []]}


def test_the_seed_text_reads_as_the_frames_it_prints():
    capture = read_capture(SEED_4_1.encode())
    assert capture == b"".join(PUBLIC)
    assert [entry["control"]["frame"] for entry in describe_capture(capture)] == ["SNRM", "UA", "I", "I", "I", "I", "DISC", "UA"]


# -- read_capture --------------------------------------------------------------------------------


def test_read_capture_takes_prefixes_separators_and_comments():
    frame = PUBLIC[6]
    assert read_capture(b"0x7E, 0xA0, 0x07, 0x03, 0x21, 0x53, 0x03, 0xC7, 0x7E") == frame
    assert read_capture(b"7e:a0:07:03:21:53:03:c7:7e\n") == frame
    assert read_capture(b"# DISC, sent by the client\r\n7EA00703 # header\r\n215303C77E\r\n") == frame
    assert read_capture(b"") == b""


def test_read_capture_keeps_binary_and_other_text_as_they_are():
    binary = b"".join(LLS)
    assert read_capture(binary) == binary
    assert read_capture(b"7E A0 0") == b"7E A0 0"  # half a byte: not hex text
    assert read_capture(b"--> < Continue requesting blocks >") == b"--> < Continue requesting blocks >"


# -- damage, noise, broken frames ----------------------------------------------------------------


def test_a_flipped_byte_in_the_information_fails_the_fcs_but_is_described():
    damaged = bytearray(PUBLIC[5])
    damaged[-5] ^= 0x01  # 00 BC 61 4F -> 00 BC 60 4F: the value, inside the information field
    (entry,) = describe_capture(bytes(damaged))
    assert entry["hcs"]["ok"] is True
    assert entry["fcs"] == {"value": "0x36E4", "ok": False}
    assert "FCS 0x36E4 sent" in entry["error"]
    assert entry["information"]["apdu"]["result"] == 12345679 - 0x100


def test_a_flipped_byte_in_the_header_fails_the_hcs():
    damaged = bytearray(PUBLIC[4])
    damaged[5] ^= 0x20  # control 0x32 -> 0x12: I, N(R) 0
    (entry,) = describe_capture(bytes(damaged))
    assert entry["hcs"]["ok"] is False and entry["fcs"]["ok"] is False
    assert entry["error"].startswith("HCS 0xD86F sent")
    assert entry["control"]["nr"] == 0


def test_noise_before_a_frame_is_reported():
    noise, entry = describe_capture(b"\x00\x11\x22" + PUBLIC[6])
    assert noise == {"frame": 1, "offset": 0, "noise": 3, "hex": "001122"}
    assert entry["frame"] == 2 and entry["offset"] == 3 and entry["control"]["frame"] == "DISC"


def test_shared_and_repeated_flags_between_frames():
    shared = PUBLIC[6] + PUBLIC[7][1:]  # one flag closes DISC and opens UA
    entries = describe_capture(b"\x7e\x7e" + shared + b"\x7e")  # the last of three flags opens DISC
    assert [(entry["offset"], entry["control"]["frame"]) for entry in entries] == [(2, "DISC"), (10, "UA")]
    assert entries[1]["hex"] == PUBLIC[7].hex().upper()
    assert describe_capture(b"\x7e\x7e") == []
    assert len(describe_capture(PUBLIC[7] + b"\x7e\x7e")) == 1


def test_a_frame_cut_short_is_described_with_an_error_and_the_next_one_still_found():
    cut = PUBLIC[5][:10]
    entries = describe_capture(cut + PUBLIC[6])
    assert entries[0]["format"]["length"] == 21 and "error" in entries[0]
    assert entries[0]["hex"] == cut.hex().upper()
    assert entries[1]["control"]["frame"] == "DISC" and "error" not in entries[1]
    (last,) = describe_capture(PUBLIC[5][:10])
    assert last["error"] == "length field 21: the capture ends after 9 of its bytes"
    (flag_only,) = describe_capture(b"\x7e\xa0")
    assert flag_only == {"frame": 1, "offset": 0, "hex": "7EA0", "error": "the capture ends inside the format field"}


def test_a_length_field_that_misses_the_closing_flag():
    longer = bytearray(PUBLIC[6])
    longer[2] += 1  # length 8: the frame would end one byte after its flag
    broken, noise, ua = describe_capture(bytes(longer) + b"\x00" + PUBLIC[7])
    assert broken["error"] == "length field 8: byte 9 is 0x00, not the closing flag"
    assert broken["hex"] == bytes(longer[:-1]).hex().upper()  # up to the next flag, which opens no frame
    assert noise == {"frame": 2, "offset": 8, "noise": 2, "hex": "7E00"}
    assert ua["control"]["frame"] == "UA" and "error" not in ua


def test_a_frame_that_does_not_parse_is_described_with_its_error():
    bad = bytearray(PUBLIC[6])
    bad[5] = 0x0B  # no frame type of IEC 62056-46
    (entry,) = describe_capture(bytes(bad))
    assert entry["format"] == {"type": 3, "segmented": False, "length": 7}
    assert "unknown" in entry["error"] and "control" not in entry


def test_an_apdu_that_does_not_decode_is_an_error_of_its_frame():
    (entry,) = describe_capture(i_frame(CLIENT, METER, LLC_REQUEST + b"\xc0\x01\x81\x00"))
    assert entry["fcs"]["ok"] is True
    assert entry["information"]["apdu"]["type"] == "GET-Request-Normal"
    assert "class id" in entry["information"]["apdu"]["error"]
    assert entry["error"] == entry["information"]["apdu"]["error"]


# -- segmentation --------------------------------------------------------------------------------


def test_a_segmented_apdu_is_described_on_the_frame_that_completes_it():
    value = octet_string(bytes(range(200)))
    information = LLC_RESPONSE + GetResponseNormal(value).to_bytes()
    first, last = split_information(information, 128)
    acknowledge = Frame(METER, CLIENT, Control(FrameType.RR, True, 0, 2)).to_bytes()
    capture = i_frame(METER, CLIENT, first, 1, 1, segmented=True) + acknowledge + i_frame(METER, CLIENT, last, 2, 1)
    segment, rr, completing = describe_capture(capture)
    assert segment["format"]["segmented"] is True and completing["format"]["segmented"] is False
    assert segment["information"] == {"length": 128, "segment": 1}
    assert rr["control"] == {"byte": "0x51", "frame": "RR", "poll_final": True, "nr": 2}
    assert completing["information"]["length"] == len(last)
    assert completing["information"]["segments"] == 2
    assert completing["information"]["llc"] == "E6E700"
    assert completing["information"]["apdu"] == {"type": "GET-Response-Normal", "invoke_id_and_priority": "0x81",
                                                 "result": bytes(range(200)).hex(), "data_type": "octet-string"}


def test_segments_are_kept_per_direction():
    answer = LLC_RESPONSE + GetResponseNormal(octet_string(b"\x01" * 150)).to_bytes()
    first, last = split_information(answer, 100)
    request = LLC_REQUEST + bytes.fromhex("C0018100010101000001FF0200")
    capture = (i_frame(METER, CLIENT, first, segmented=True) + i_frame(CLIENT, METER, request)
               + i_frame(METER, CLIENT, last))
    _, get, completing = describe_capture(capture)
    assert get["information"]["apdu"]["type"] == "GET-Request-Normal"
    assert completing["information"]["apdu"]["result"] == "01" * 150


def test_a_new_link_drops_a_half_received_apdu():
    first, _ = split_information(LLC_RESPONSE + GetResponseNormal(octet_string(b"\x02" * 150)).to_bytes(), 100)
    snrm = Frame(METER, CLIENT, Control(FrameType.SNRM)).to_bytes()
    answer = LLC_RESPONSE + GetResponseNormal(Data(DataTag.UNSIGNED, 7)).to_bytes()
    *_, entry = describe_capture(i_frame(METER, CLIENT, first, segmented=True) + snrm + i_frame(METER, CLIENT, answer))
    assert entry["information"] == {"length": len(answer), "llc": "E6E700", "direction": "from meter",
                                    "apdu": {"type": "GET-Response-Normal", "invoke_id_and_priority": "0x81",
                                             "result": 7, "data_type": "unsigned"}}


def test_a_push_in_a_ui_frame():
    notification = bytes.fromhex("0F00000001" "00" "0202" "09060101010800FF" "0600000010")
    push = Frame(Address.server(0x15), Address.client(16), Control(FrameType.UI), LLC_RESPONSE + notification).to_bytes()
    (entry,) = describe_capture(push)
    assert entry["control"] == {"byte": "0x13", "frame": "UI", "poll_final": True}
    assert entry["information"]["apdu"]["type"] == "data-notification" and "error" not in entry


@given(st.binary(min_size=6, max_size=24), st.integers(8, 80), st.integers(1, 8))
@BOUNDED
def test_the_password_never_shows_however_the_aarq_is_segmented_or_cut(password, max_info, keep):
    aarq = Aarq(InitiateRequest(LLS_CONFORMANCE), mechanism=MECHANISM_LLS, authentication_value=password)
    parts = split_information(LLC_REQUEST + aarq.to_bytes(), max_info)
    frames = [i_frame(CLIENT, METER, part, segmented=n < len(parts) - 1) for n, part in enumerate(parts)]
    text = json.dumps(describe_capture(b"".join(frames[:keep]))).upper()
    assert password.hex().upper() not in text
    if keep >= len(frames):
        assert f"{len(password)} BYTES, NOT SHOWN" in text


def one_byte_damages(frame: bytes) -> list[bytes]:
    """The frame with any one byte changed (to a flag, a format byte, 00, FF or one bit off),
    a flag or other byte put in anywhere, or any one byte left out."""
    damaged = []
    for position, byte in enumerate(frame):
        for value in {0x00, 0x7E, 0xA0, 0xFF, byte ^ 0x01, byte ^ 0x80} - {byte}:
            damaged.append(frame[:position] + bytes((value,)) + frame[position + 1 :])
        damaged += [frame[:position] + bytes((value,)) + frame[position:] for value in (0x7E, 0x00, 0xA0)]
        damaged.append(frame[:position] + frame[position + 1 :])
    return damaged


def test_the_password_never_shows_in_an_aarq_damaged_by_one_byte():
    before, aarq, after = b"".join(LLS[:2]), LLS[2], LLS[3]
    for damaged in one_byte_damages(aarq):
        assert "3132333435" not in json.dumps(describe_capture(before + damaged + after)), damaged.hex()


CONTEXT = bytes.fromhex("A109060760857405080101")
REQUIREMENTS = bytes.fromhex("8A020780")
MECHANISM = bytes.fromhex("8B0760857405080201")
USER_INFORMATION = bytes.fromhex("BE10040E") + InitiateRequest(LLS_CONFORMANCE).to_bytes()


def raw_aarq(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return bytes((0x60, len(body))) + body


def test_the_password_never_shows_with_long_form_lengths():
    aarq = raw_aarq(CONTEXT, REQUIREMENTS, MECHANISM, bytes.fromhex("AC81098081 06") + b"Sesam1", USER_INFORMATION)
    (entry,) = describe_capture(i_frame(CLIENT, METER, LLC_REQUEST + aarq))
    assert "error" not in entry
    assert entry["information"]["apdu"]["calling_authentication_value"] == "6 bytes, not shown"
    assert b"Sesam1".hex().upper() not in entry["hex"] and "Sesam1" not in json.dumps(entry)


def test_the_password_never_shows_in_earlier_segments_of_an_aarq_that_does_not_decode():
    broken = raw_aarq(CONTEXT, REQUIREMENTS, b"\x8b\x85" + MECHANISM[2:], bytes.fromhex("AC078006") + b"Sesam", USER_INFORMATION)
    parts = split_information(LLC_REQUEST + broken, 16)
    capture = b"".join(i_frame(CLIENT, METER, part, segmented=n < len(parts) - 1) for n, part in enumerate(parts))
    entries = describe_capture(capture)
    assert all(entry["fcs"]["ok"] for entry in entries) and "bad BER length" in entries[-1]["error"]
    assert b"Sesam".hex().upper() not in json.dumps(entries)


def test_a_new_secret_set_on_the_association_is_not_shown():
    secret = AttributeDescriptor(15, Obis(0, 0, 40, 0, 0, 255), 7)
    change = MethodDescriptor(15, Obis(0, 0, 40, 0, 0, 255), 2)
    capture = (i_frame(CLIENT, METER, LLC_REQUEST + SetRequestNormal(secret, octet_string(b"Sesam-42")).to_bytes())
               + i_frame(CLIENT, METER, LLC_REQUEST + ActionRequestNormal(change, octet_string(b"Sesam-43")).to_bytes()))
    set_secret, change_secret = describe_capture(capture)
    assert set_secret["information"]["apdu"]["value"] == "not shown"
    assert set_secret["information"]["apdu"]["data_type"] == "octet-string"
    assert change_secret["information"]["apdu"]["parameters"] == "not shown"
    text = json.dumps([set_secret, change_secret])
    assert "Sesam" not in text and b"Sesam-4".hex().upper() not in text


# -- describe_apdu -------------------------------------------------------------------------------

CLOCK = AttributeDescriptor(8, Obis(0, 0, 1, 0, 0, 255), 2)


def test_describe_association_answers_and_release():
    refused = Aare(AssociationResult.REJECTED_PERMANENT, 13)
    assert describe_apdu(refused.to_bytes()) == {"type": "AARE", "application_context": "logical-name, no ciphering",
                                                 "result": "rejected-permanent", "diagnostic": "authentication-failure"}
    too_low = Aare(AssociationResult.REJECTED_PERMANENT, 1, user_information=ConfirmedServiceError(1, 6, 1))
    assert describe_apdu(too_low.to_bytes())["error"] == "initiate error: dlms version too low"
    provider = Aare(AssociationResult.REJECTED_TRANSIENT, 2, DiagnosticSource.SERVICE_PROVIDER)
    assert describe_apdu(provider.to_bytes())["diagnostic"] == "no-common-acse-version"
    assert describe_apdu(Aare(AssociationResult.REJECTED_PERMANENT, 99).to_bytes())["diagnostic"] == "diagnostic 99"
    assert describe_apdu(ReleaseRequest().to_bytes()) == {"type": "RLRQ", "reason": "normal"}
    assert describe_apdu(b"\x0e\x01\x06\x02") == {"type": "confirmed-service-error",
                                                  "error": "initiate error: incompatible conformance"}


def test_describe_set_action_and_list_services():
    assert describe_apdu(SetRequestNormal(CLOCK, Data(DataTag.LONG_UNSIGNED, 60)).to_bytes()) == {
        "type": "SET-Request-Normal", "invoke_id_and_priority": "0x81", "attribute": "8:0-0:1.0.0.255:2",
        "value": 60, "data_type": "long-unsigned"}
    assert describe_apdu(SetResponseNormal(DataAccessResult.READ_WRITE_DENIED).to_bytes())["result"] == "read-write-denied"
    reset = MethodDescriptor(18, Obis(0, 0, 44, 0, 0, 255), 4)
    assert describe_apdu(ActionRequestNormal(reset, Data(DataTag.INTEGER, 0)).to_bytes()) == {
        "type": "ACTION-Request-Normal", "invoke_id_and_priority": "0x81", "method": "18:0-0:44.0.0.255:method 4",
        "parameters": 0, "data_type": "integer"}
    assert "parameters" not in describe_apdu(ActionRequestNormal(reset).to_bytes())
    answered = describe_apdu(ActionResponseNormal(ActionResult.SUCCESS, Data(DataTag.UNSIGNED, 1)).to_bytes())
    assert answered["result"] == "success" and answered["return_value"] == 1
    listed = describe_apdu(GetRequestWithList(((CLOCK, None), (CLOCK, None))).to_bytes())
    assert listed["attributes"] == [{"attribute": "8:0-0:1.0.0.255:2"}] * 2
    results = describe_apdu(GetResponseWithList((Data(DataTag.BOOLEAN, True), DataAccessResult.OBJECT_UNDEFINED)).to_bytes())
    assert results["results"] == [{"result": True, "data_type": "boolean"}, {"data_access_result": "object-undefined"}]


def test_describe_exceptions_and_failures():
    exception = ExceptionResponse(StateError.SERVICE_NOT_ALLOWED, ServiceError.OPERATION_NOT_POSSIBLE)
    assert describe_apdu(exception.to_bytes()) == {"type": "exception-response", "state_error": "service-not-allowed",
                                                   "service_error": "operation-not-possible"}
    undefined = describe_apdu(GetResponseNormal(DataAccessResult.OBJECT_UNDEFINED).to_bytes())
    assert undefined == {"type": "GET-Response-Normal", "invoke_id_and_priority": "0x81", "data_access_result": "object-undefined"}
    assert describe_apdu(b"") == {"type": "unknown", "error": "APDU: empty"}
    assert describe_apdu(b"\x42\x00")["type"] == "unknown"
    unsupported = describe_apdu(b"\xc1\x02\x81")
    assert unsupported["type"] == "SET-Request-With-First-Datablock" and "not supported" in unsupported["error"]


def test_describe_floats_that_json_cannot_hold():
    nan = describe_apdu(GetResponseNormal(Data(DataTag.FLOAT32, float("nan"))).to_bytes())
    assert nan["result"] is None and nan["data_type"] == "float32"  # JSON has no NaN
    json.dumps(nan, allow_nan=False)


def test_describe_push_notifications_and_ciphered_apdus():
    notification = bytes.fromhex("0F00000001" "00" "0202" "09060101010800FF" "0600000010")
    assert describe_apdu(notification) == {"type": "data-notification", "long_invoke_id_and_priority": "0x00000001",
                                           "body": ["0101010800ff", 16], "data_type": "structure"}
    ciphered = bytes.fromhex("DB08") + b"KFM\x00\x01\x02\x03\x04" + bytes.fromhex("0A2000000007") + bytes(5)
    assert describe_apdu(ciphered) == {"type": "general-glo-ciphering", "system_title": "4B464D0001020304",
                                       "security_control": "0x20", "frame_counter": 7, "ciphered_length": 5}


# -- nothing raises ------------------------------------------------------------------------------


def strict_json(entries: list[dict]) -> None:
    json.dumps(entries, allow_nan=False)


@given(st.binary(max_size=600))
@BOUNDED
def test_random_bytes_never_raise(data):
    strict_json(describe_capture(data))
    strict_json(describe_capture(read_capture(data)))
    strict_json([describe_apdu(data)])


@given(st.text(alphabet="0123456789abcdefABCDEF x:,#-<>*\n", max_size=300))
@BOUNDED
def test_random_hex_like_text_never_raises(text):
    strict_json(describe_capture(read_capture(text.encode())))


@given(st.lists(st.sampled_from(PUBLIC + LLS), min_size=1, max_size=4),
       st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255), st.sampled_from(["set", "insert", "delete"])), max_size=6))
@BOUNDED
def test_mutated_seed_frames_never_raise(frames, mutations):
    capture = bytearray(b"".join(frames))
    for position, byte, kind in mutations:
        position %= len(capture) or 1
        if kind == "set" and capture:
            capture[position] = byte
        elif kind == "insert":
            capture.insert(position, byte)
        elif capture:
            del capture[position]
    entries = describe_capture(bytes(capture))
    strict_json(entries)
    assert_shown_as_sent(entries, bytes(capture))


def assert_shown_as_sent(entries: list[dict], capture: bytes) -> None:
    """Each entry's hex is the capture's bytes at its offset (or ** for a secret byte), in order;
    neighbours share at most one flag: nothing is invented, duplicated or reordered."""
    previous_end = 0
    for entry in entries:
        size = len(entry["hex"]) // 2
        assert entry.get("noise", size) == size
        assert entry["offset"] >= previous_end - 1
        sent = capture[entry["offset"] : entry["offset"] + size].hex().upper()
        assert len(sent) == len(entry["hex"])
        assert all(entry["hex"][i : i + 2] in ("**", sent[i : i + 2]) for i in range(0, len(sent), 2))
        previous_end = entry["offset"] + size
