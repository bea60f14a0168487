"""Fuzzing behind the checks (issue 22 item 2): the real captures of tests/data mutated, then their
checksums computed again (M-Bus checksum, HDLC HCS and FCS, P1 CRC-16, Modbus CRC, wM-Bus block
CRCs) and their plaintexts encrypted again with the capture's key (AES-GCM for DLMS and P1,
AES-CBC mode 5 for OMS, the MEP digest), so that a mutation reaches the parser behind the check
instead of being dropped at it. Length fields get off-by-one, zero and huge values.

Pass: only `ProtocolError` escapes a decoder and nothing escapes a link machine; a frame whose
checks were made right is taken by its framer (the mutation did get past the check); a telegram
re-encrypted with the right key is never dropped as a key problem; every reading is strict JSON;
and each decoder's work, counted in Python calls (`mutations.Work`), stays linear in its input.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from meterlink.machines.base import Publish
from meterlink.machines.hdlc_push import HdlcPushReader
from meterlink.machines.mbus import MBusAdapter
from meterlink.machines.p1 import P1Reader
from meterlink.machines.wmbus import WMBusReceiver
from meterlink.protocols.c1219 import Dimensions, decode_bt23
from meterlink.protocols.dlms.apdu import parse_apdu
from meterlink.protocols.dlms.push import Outcome, decode_push
from meterlink.protocols.dlms.security import CipherKeys, encrypt, parse_ciphered
from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.hdlc import Address, Frame, HdlcFramer, parse_frame
from meterlink.protocols.mbus import LongFrame, MBusFramer, checksum, encode_long, split_segments
from meterlink.protocols.mbus_app import (DeviceAddress, configuration_word, decode_application, encrypt_payload,
                                          parse_transport, without_ell)
from meterlink.protocols.mep import MepError, MepReceiver, TableData, decode_request, decode_response, digest_update
from meterlink.protocols.oms import decode_oms_push
from meterlink.protocols.p1 import P1Framer, TelegramFramed
from meterlink.protocols.p1_encrypted import LUXEMBOURG_AUTH_KEY, decrypt_telegram
from meterlink.protocols.sunspec import BadFrame as ModbusBadFrame
from meterlink.protocols.sunspec import ExceptionAnswer, ModbusRtuClient, RegistersRead, RegistersWritten
from meterlink.protocols.wmbus import parse_frame as parse_wmbus
from meterlink.protocols.wmbus import with_crcs_a, with_crcs_b
from meterlink.protocols.wmbus_receivers import CulFramer, cul_line
from meterlink.protocols.wrapper import WrapperFrame, WrapperFramer
from bsm_data import scs_frames
from mep_data import KEY as MEP_KEY
from mep_data import guide_pairs
from mutations import Work, budget, cuts, edits, hdlc_frame, in_chunks, length_values, modbus_crc, mutate, strict_json, \
    with_crc, with_fcs
from test_hdlc_push_captures import CAPTURES as HDLC_CAPTURES
from test_hdlc_push_captures import DOC_EXAMPLES, ENCRYPTED
from test_hdlc_push_captures import plaintext as hdlc_plaintext
from test_push_mapping import KEYED, capture, ciphered_apdu, plaintext

DATA = Path(__file__).parent / "data"
REPAIRED = budget(100)
KEY_OUTCOMES = (Outcome.WRONG_KEY, Outcome.NO_AUTH_KEY, Outcome.WRONG_AUTH_KEY, Outcome.NO_KEY)
MADE_UP_AUTH_KEY = bytes(range(0x40, 0x50))
"""An authentication key for captures whose meter sends no tag: re-encrypted with one, the tag
proves the key right, so any drop after it is the parser's."""


def keys_of(found: dict) -> CipherKeys:
    auth = found.get("auth_key_if_any")
    return CipherKeys(bytes.fromhex(found["key_if_any"]), bytes.fromhex(auth) if auth else None)


# -- M-Bus: frames with their checksum made right ---------------------------------------------

MBUS_NAMES = ["kaifa_mbus_tinetz_doc", "kaifa_mbus_ma309_pl_gh905", "kaifa_mbus_gurux18232_nokey",
              "kaifa_mbus_evn_netznoe_doc", "kaifa_mbus_evn_fkw9", "sagemcom_mbus_evn_fkw9_overflow",
              "sagemcom_mbus_evn_rddl", "sagemcom_mbus_evn_gh155_overflow_nokey", "elster_mbus_salzburgnetz_doc_nokey"]
MBUS_STREAMS = [bytes.fromhex(capture(name)["hex_or_text"]) for name in MBUS_NAMES]
MBUS_KEYS = [keys_of(capture(name)) for name in MBUS_NAMES if capture(name)["key_if_any"]]
MBUS_FRAMES = [[e for e in MBusFramer().feed(stream) if isinstance(e, LongFrame)] for stream in MBUS_STREAMS]
assert all(MBUS_FRAMES)


def mbus_long(frame: LongFrame, data: bytes) -> bytes:
    """`frame` with other data, checksum made right: L overflowing as the Sagemcom's when its body
    fits 256 to 258 bytes, else cut to the 252 data bytes an L can say."""
    body_length = 3 + len(data)
    overflow = frame.length_overflow and 256 <= body_length < 259
    return encode_long(frame.c, frame.a, frame.ci, data if overflow else data[:252], overflow)


def relength(raw: bytes, stated: int) -> bytes:
    """A long frame whose L (both copies) says `stated`: checksum and stop byte put where that L
    ends them when the bytes are there, the rest left behind it."""
    body = raw[4:-2]
    length = stated + 256 if stated < 3 else stated
    head = bytes((0x68, stated, stated, 0x68))
    if length > len(body):
        return head + body
    return head + body[:length] + bytes((checksum(body[:length]), 0x16)) + body[length:]


def run_mbus(stream: bytes, chunk_cuts: list[int], keys: list[CipherKeys], payload: str = "auto") -> list:
    adapter = MBusAdapter(keys=lambda: keys, payload=payload)
    for event in in_chunks(MBusFramer(), stream, chunk_cuts):
        adapter.handle(event, 1.0)
    published = [a for a in adapter.take_actions() if isinstance(a, Publish)]
    for action in published:
        strict_json(action.reading.to_json())
    return published


@REPAIRED
@given(st.sampled_from(range(len(MBUS_STREAMS))), st.data(), edits, cuts)
def test_mbus_frames_with_a_right_checksum_reach_the_joiner_and_the_cipher(which, data, changes, chunk_cuts):
    frames = MBUS_FRAMES[which]
    target = data.draw(st.integers(0, len(frames) - 1))
    rebuilt = [mbus_long(f, mutate(f.data, changes) if n == target else f.data) for n, f in enumerate(frames)]
    got = [e for e in MBusFramer().feed(b"".join(rebuilt)) if isinstance(e, LongFrame)]
    assert len(got) == len(rebuilt)  # every checksum right: no frame stops at the framer
    if data.draw(st.booleans()):
        rebuilt[target] = relength(rebuilt[target], data.draw(length_values(1, rebuilt[target][1])))
    stream = b"".join(rebuilt)
    with Work() as work:
        run_mbus(stream, chunk_cuts, MBUS_KEYS)
    work.at_most(300, len(stream), base=20000)


# -- DLMS push: plaintexts re-encrypted with the capture's key -----------------------------------

ENCRYPTED_PUSH = [name for name in KEYED] + [name for name in ENCRYPTED]
"""Every capture with a published key whose plaintext is a data-notification (M-Bus and HDLC)."""


def reencrypted(name: str, plain: bytes, tagged: bool) -> tuple[bytes, CipherKeys]:
    """`plain` encrypted as the capture's meter encrypts, with its key, system title and frame
    counter; `tagged`: with an authentication tag (the capture's AK, or a made-up one)."""
    found = capture(name)
    ciphered = parse_ciphered(ciphered_apdu(name) if name in KEYED else
                              parse_frame(bytes.fromhex(found["hex_or_text"])).information[3:])
    keys = keys_of(found)
    if tagged:
        keys = CipherKeys(keys.encryption, keys.authentication or MADE_UP_AUTH_KEY)
    control = ciphered.security_control | 0x10 if tagged else ciphered.security_control
    apdu = encrypt(plain, ciphered.system_title, ciphered.frame_counter, keys.encryption, control, keys.authentication)
    return apdu, keys


def push_plaintext(name: str) -> bytes:
    return plaintext(name) if name in KEYED else hdlc_plaintext(name)


@REPAIRED
@given(st.sampled_from(ENCRYPTED_PUSH), edits, st.booleans(), cuts)
def test_reencrypted_notifications_reach_the_parser_on_every_link(name, changes, tagged, chunk_cuts):
    plain = mutate(push_plaintext(name), changes)[:1900]  # one HDLC frame's worth
    apdu, keys = reencrypted(name, plain, tagged)
    with Work() as work:
        result = decode_push(apdu, [keys], None, "mbus", 1.0)
    work.at_most(60, len(apdu), base=20000)
    if tagged:  # the tag proves the key right: whatever went wrong is the plaintext's
        assert result.outcome not in KEY_OUTCOMES, result.detail
    if result.reading is not None:
        strict_json(result.reading.to_json())
    # The same APDU over each push link: M-Bus segments (Kaifa's TSAP, L <= 0xFA) and one HDLC frame.
    published = run_mbus(b"".join(split_segments(apdu, 0x53, 0xFF)), chunk_cuts, [keys])
    assert len(published) == (result.outcome is Outcome.DECODED)
    reader, framer = HdlcPushReader(keys=lambda: [keys]), HdlcFramer()
    for event in in_chunks(framer, hdlc_frame(parse_frame(HDLC_PUSH[0]), b"\xe6\xe7\x00" + apdu), chunk_cuts):
        reader.handle(event, 1.0)
    published = [a for a in reader.take_actions() if isinstance(a, Publish)]
    assert len(published) == (result.outcome is Outcome.DECODED)


# -- HDLC: frames with HCS and FCS made right ---------------------------------------------------

KAMSTRUP_SESSION = json.loads((DATA / "kamstrup_hdlc.json").read_text())
HDLC_PUSH = [bytes.fromhex(capture(name)["hex_or_text"]) for name in HDLC_CAPTURES] + [bytes.fromhex(f) for f in DOC_EXAMPLES]
HDLC_CLIENT = [bytes.fromhex(exchange[side]) for session in ("public_association", "lls_profile_blocks")
               for exchange in KAMSTRUP_SESSION[session]["exchanges"] for side in ("request", "response")]
HDLC_KEYS = [keys_of(capture(name)) for name in HDLC_CAPTURES if capture(name).get("key_if_any")]


def header_end(raw: bytes) -> int:
    """Where the control field ends, counted from after the opening flag."""
    body = raw[1:-1]
    _, offset = Address.parse(body, 2)
    _, offset = Address.parse(body, offset)
    return offset + 1


@REPAIRED
@given(st.sampled_from(HDLC_PUSH + HDLC_CLIENT), edits, cuts)
def test_hdlc_frames_with_right_checks_reach_the_apdu_parsers(raw, changes, chunk_cuts):
    original = parse_frame(raw)
    llc, apdu = original.information[:3], original.information[3:]
    rebuilt = hdlc_frame(original, llc + mutate(apdu, changes))
    with Work() as work:
        events = in_chunks(HdlcFramer(), rebuilt, chunk_cuts)
        assert [e for e in events if isinstance(e, Frame)] == [parse_frame(rebuilt)]  # past HCS and FCS
        try:
            parse_apdu(parse_frame(rebuilt).information[3:])
        except ProtocolError:
            pass
        reader = HdlcPushReader(keys=lambda: HDLC_KEYS)
        for event in events:
            reader.handle(event, 1.0)
        for action in reader.take_actions():
            if isinstance(action, Publish):
                strict_json(action.reading.to_json())
    work.at_most(150, len(rebuilt), base=20000)


@REPAIRED
@given(st.sampled_from(HDLC_PUSH + HDLC_CLIENT), st.data(), edits, st.sampled_from(HDLC_PUSH), cuts)
def test_hdlc_headers_and_length_fields_with_right_checks_never_hold_back_the_next_frame(raw, data, changes, intact, chunk_cuts):
    end = header_end(raw)
    frame = bytearray(raw)
    stated = data.draw(length_values(2, int.from_bytes(raw[1:3], "big") & 0x7FF)) & 0x7FF
    frame[1:3] = ((raw[1] & 0xF8) << 8 | stated).to_bytes(2, "big")
    damaged = with_fcs(mutate(bytes(frame), changes, start=3, end=end + 1), end)
    # A length field saying more than is sent holds the framer until that many bytes have come:
    # the line's silence (Partial, then the inter-octet timeout) ends that, as the actor does.
    framer = HdlcFramer()
    with Work() as work:
        in_chunks(framer, damaged, chunk_cuts)
        framer.reset()
        events = in_chunks(framer, intact, chunk_cuts)
    assert [e for e in events if isinstance(e, Frame)] == [parse_frame(intact)]
    work.at_most(150, len(damaged) + len(intact), base=20000)


# -- the IEC 62056-47 wrapper -------------------------------------------------------------------

WRAPPED = [parse_frame(raw).information[3:] for raw in HDLC_CLIENT]


@REPAIRED
@given(st.sampled_from(WRAPPED), edits, st.data(), st.sampled_from(WRAPPED), cuts)
def test_wrapper_frames_with_any_length_field(apdu, changes, data, intact, chunk_cuts):
    mutated = mutate(apdu, changes)[:0xFFFF]
    header = bytearray(WrapperFrame(0x0001, 0x0010, mutated).to_bytes()[:8])
    header[6:8] = data.draw(length_values(2, len(mutated))).to_bytes(2, "big")
    stated = int.from_bytes(header[6:8], "big")
    stream = bytes(header) + mutated + WrapperFrame(0x0001, 0x0010, intact).to_bytes()
    with Work() as work:
        events = in_chunks(WrapperFramer(), stream, chunk_cuts)
        frames = [e for e in events if isinstance(e, WrapperFrame)]
        for frame in frames:
            try:
                parse_apdu(frame.apdu)
            except ProtocolError:
                pass
    work.at_most(100, len(stream), base=20000)
    if stated == len(mutated):
        assert [f.apdu for f in frames] == [mutated, intact]


# -- P1: encrypted telegrams re-encrypted with the capture's key ---------------------------------

SMARTY = json.loads((DATA / "sagemcom_p1_smarty_nexxtlab.json").read_text())
SMARTY_APDU = bytes.fromhex(SMARTY["hex_or_text"])
SMARTY_KEYS = CipherKeys(bytes.fromhex(SMARTY["key_if_any"]), LUXEMBOURG_AUTH_KEY)
SMARTY_TEXT = SMARTY["expected_values_if_given"]["decrypted_text_by_dlms_cosem"].encode("ascii")


@REPAIRED
@given(edits, st.booleans(), cuts)
def test_reencrypted_p1_telegrams_reach_the_p1_parser(changes, crc_right, chunk_cuts):
    body = SMARTY_TEXT[: SMARTY_TEXT.rindex(b"!") + 1]
    text = mutate(body, changes, start=body.index(b"\n"), end=len(body) - 1)
    text = with_crc(text) if crc_right else text + SMARTY_TEXT[len(body):]
    ciphered = parse_ciphered(SMARTY_APDU)
    apdu = encrypt(text, ciphered.system_title, ciphered.frame_counter, SMARTY_KEYS.encryption, 0x30,
                   SMARTY_KEYS.authentication)
    with Work() as work:
        result = decrypt_telegram(apdu, [SMARTY_KEYS])
        assert result.outcome in (Outcome.DECODED, Outcome.UNSUPPORTED_LAYOUT), result.detail
        reader = P1Reader(keys=lambda: [SMARTY_KEYS])
        for event in in_chunks(P1Framer(), apdu, chunk_cuts):
            reader.handle(event, 1.0)
            if isinstance(event, TelegramFramed) and event.telegram is not None:
                strict_json(event.telegram.to_reading(None).to_json())
        for action in reader.take_actions():
            if isinstance(action, Publish):
                strict_json(action.reading.to_json())
    work.at_most(150, len(apdu), base=20000)


# -- Modbus RTU (BSM): responses with their CRC made right ----------------------------------------

MODBUS_RESPONSES = [frame for direction, frame in scs_frames() if direction == "<--"]


@REPAIRED
@given(st.sampled_from(MODBUS_RESPONSES), edits, st.data(), cuts)
def test_modbus_responses_with_a_right_crc_reach_the_pdu_decoder(frame, changes, data, chunk_cuts):
    pdu = bytearray(mutate(frame[1:-2], changes))
    if len(pdu) > 1 and data.draw(st.booleans()):
        pdu[1] = data.draw(length_values(1, len(pdu) - 2))  # the byte count of a read's answer
    stream = modbus_crc(frame[:1] + bytes(pdu)) + frame
    client = ModbusRtuClient(42)
    with Work() as work:
        responses = in_chunks(client, stream, chunk_cuts)
    work.at_most(400, len(stream), base=30000)
    assert all(isinstance(r, (RegistersRead, RegistersWritten, ExceptionAnswer, ModbusBadFrame)) for r in responses)


# -- OMS (EN 13757-3) and wireless M-Bus: mode 5 re-encrypted, block CRCs made right --------------

AMIS = json.loads((DATA / "amis_mbus_netzooe_spec.json").read_text())
WMBUSMETERS = {t["name"]: t for t in json.loads((DATA / "wmbus_wmbusmeters_keyed.json").read_text())["telegrams"]}
AMIS_FRAME = next(e for e in MBusFramer().feed(bytes.fromhex(AMIS["frame_hex"])) if isinstance(e, LongFrame))
RADIO = {name: parse_wmbus(bytes.fromhex(WMBUSMETERS[name]["hex"])) for name in ("waterstarm", "elf2")}
RADIO_KEYS = {name: bytes.fromhex(WMBUSMETERS[name]["key"]) for name in RADIO}
RADIO_FRAMES = [parse_wmbus(bytes.fromhex(h)).to_bytes() for h in WMBUSMETERS["frames with their block CRCs"]["hex"]] + [
    frame.to_bytes() for frame in RADIO.values()]


def with_records(apdu: bytes, address: DeviceAddress, key: bytes, records: bytes) -> bytes:
    """A mode-5 APDU (CI, header, records) with other records, encrypted with `key` as the meter would."""
    body = without_ell(apdu)
    ell = apdu[: len(apdu) - len(body)]
    transport = parse_transport(body)
    assert transport.access_number is not None
    cipher, blocks = encrypt_payload(records, address, transport.access_number, key)
    header = body[: 1 + transport.header_length - 2]
    return ell + header + configuration_word(5, blocks) + cipher


def mode5_apdu(apdu: bytes, address: DeviceAddress, key: bytes, changes: list, room: int) -> bytes:
    """A mode-5 APDU with its records mutated (at most `room` bytes of them) and encrypted again."""
    records = decode_application(apdu, address, [key]).plaintext[2:]  # after 2F 2F
    return with_records(apdu, address, key, mutate(records, changes)[:room])


@REPAIRED
@given(edits, cuts)
def test_amis_records_reencrypted_reach_the_record_parser(changes, chunk_cuts):
    apdu = bytes((AMIS_FRAME.ci,)) + AMIS_FRAME.data
    transport = parse_transport(apdu)
    assert transport.address is not None
    key = bytes.fromhex(AMIS["key"])
    mutated = mode5_apdu(apdu, transport.address, key, changes, room=220)
    with Work() as work:
        result = decode_oms_push(mutated, [CipherKeys(key)], "mbus", 1.0)
    work.at_most(100, len(mutated), base=20000)
    assert result.outcome not in KEY_OUTCOMES, result.detail  # 2F 2F came out: the key is right
    stream = encode_long(AMIS_FRAME.c, AMIS_FRAME.a, AMIS_FRAME.ci, mutated[1:][:252])
    published = run_mbus(stream, chunk_cuts, [CipherKeys(key)], payload="oms")
    assert len(published) <= 1


@REPAIRED
@given(st.sampled_from(sorted(RADIO)), edits, st.booleans())
def test_radio_telegrams_reencrypted_with_block_crcs_reach_the_record_parser(name, changes, format_b):
    frame, key = RADIO[name], RADIO_KEYS[name]
    apdu = mode5_apdu(frame.apdu, frame.address, key, changes, room=200)  # L is one byte
    body = bytes((frame.c,)) + frame.address.to_link_bytes() + apdu
    raw = bytes((len(body),)) + body
    on_air = with_crcs_b(raw) if format_b else with_crcs_a(raw)
    with Work() as work:
        parsed = parse_wmbus(on_air)  # CRCs right: the frame is taken
        result = decode_oms_push(parsed.apdu, [CipherKeys(key)], "wmbus", 1.0, parsed.address)
        receiver = WMBusReceiver(keys=lambda meter_id: [CipherKeys(key)])
        for event in CulFramer().feed(cul_line(on_air, format_b)):
            receiver.handle(event, 1.0)
        for action in receiver.take_actions():
            if isinstance(action, Publish):
                strict_json(action.reading.to_json())
    work.at_most(200, len(on_air), base=20000)
    assert result.outcome not in KEY_OUTCOMES, result.detail


@REPAIRED
@given(st.sampled_from(RADIO_FRAMES), edits, st.data(), st.booleans())
def test_radio_frames_with_block_crcs_and_any_length_field(raw, changes, data, format_b):
    frame = bytearray(mutate(raw, changes, start=1))[:255]
    frame[0] = data.draw(length_values(1, len(frame) - 1))
    try:
        on_air = with_crcs_b(bytes(frame)) if format_b else with_crcs_a(bytes(frame))
    except (IndexError, ValueError):
        return  # L says more than the frame holds: nothing to compute CRCs over
    with Work() as work:
        try:
            parsed = parse_wmbus(on_air)
            decode_oms_push(parsed.apdu, [], "wmbus", 1.0, parsed.address)
        except ProtocolError:
            pass
        receiver = WMBusReceiver()
        for event in CulFramer().feed(cul_line(on_air, format_b)):
            receiver.handle(event, 1.0)
        receiver.take_actions()
    work.at_most(200, len(on_air), base=20000)


# -- MEP: responses with their digest computed again ---------------------------------------------

MEP_READS = [(decode_request(request, MEP_KEY)[0], response) for request, response in guide_pairs()[:2]]
BT23_DIMS = Dimensions(demand_reset_counter=False, time_remaining=False, summations=11, demands=0, coincidents=0,
                       occurrences=0, tiers=0, present_demands=0, present_values=0)
"""The guide's BT23 example: 11 summations, nothing else (tests/data/mep_guide_rc4_examples.txt)."""


@REPAIRED
@given(st.sampled_from(MEP_READS), edits, st.data(), cuts)
def test_mep_responses_with_a_right_digest_reach_the_table_decoder(pair, changes, data, chunk_cuts):
    sent, response = pair
    payload = bytearray(mutate(response[2:-8], changes))[:460]
    if len(payload) > 2 and data.draw(st.booleans()):
        payload[1:3] = data.draw(length_values(2, len(payload) - 3)).to_bytes(2, "big")  # a read's count
    body = bytes(payload) + digest_update(MEP_KEY, bytes(payload), sent.state).digest
    message = len(body).to_bytes(2, "big") + body
    with Work() as work:
        in_chunks(MepReceiver(), message, chunk_cuts)
        try:
            answer = decode_response(body, sent, MEP_KEY)
            if isinstance(answer, TableData):
                decode_bt23(answer.data, BT23_DIMS)
        except MepError as error:
            assert "does not authenticate" not in str(error)  # the digest is right: the mutation got in
        except ProtocolError:
            pass
    work.at_most(400, len(message), base=20000)
