"""Interoperability: `meterlink image-transfer` against an image transfer object nobody on this
project wrote, the class 18 object (0.0.44.0.0.255) of the gurux-dlms package's server classes
(Gurux Ltd., GPL-2.0; used here as a test peer only, no code of it in meterlink).

Gurux's GXDLMSServer does the HDLC framing over TCP, SNRM/UA, the AARQ/AARE with Low Level
Security, GET and ACTION with their encodings, the reassembly of segmented requests and the class
18 attributes and methods. As released (gurux-dlms 1.0.203) the Python server does not run: the
fixes below are the smallest that make it answer, each marked "gurux:" with what is wrong. Its
image_verify and image_activate do nothing at all (the status stays 1, "initiated"), so the test's
object adds what the Blue Book says they do: verification 3 or 4, activation 6, and the meter then
runs the new image (its software revision becomes the image's identifier).

The meter's 128-byte HDLC information fields (GXDLMSHdlcSetup's default) are smaller than its
200-byte image blocks (GXDLMSImageTransfer's default), so every image_block_transfer goes to it in
segments and gurux answers each but the last with RR.
"""

from __future__ import annotations

import json
import random
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

gurux_dlms = pytest.importorskip("gurux_dlms", reason="gurux-dlms (test extra) is not installed")

from gurux_dlms import GXDLMSServer, GXServerReply, ValueEventArgs  # noqa: E402
from gurux_dlms.enums import AccessMode, Authentication, ErrorCode, InterfaceType, MethodAccessMode, SourceDiagnostic  # noqa: E402
from gurux_dlms.objects import GXDLMSAssociationLogicalName, GXDLMSData, GXDLMSHdlcSetup, GXDLMSImageTransfer  # noqa: E402
from gurux_dlms.objects.enums import ImageTransferStatus  # noqa: E402

from processes import meterlink  # noqa: E402

PASSWORD = b"12345"
REVISION_BEFORE = b"50981040-Q1"


class Reply(GXServerReply):
    """gurux: GXDLMSServer calls setReply, getConnectionInfo and setCount, which GXServerReply lacks."""

    def setReply(self, value: bytes) -> None:  # noqa: N802 (gurux's names)
        self.reply = value

    def getConnectionInfo(self) -> object:  # noqa: N802
        return self.connectionInfo

    def setCount(self, value: int) -> None:  # noqa: N802
        self.count = value


class HdlcSetup(GXDLMSHdlcSetup):
    """gurux: handleSnrmRequest reads maxInfoTX/maxInfoRX/windowSizeTX/windowSizeRX of the HDLC
    setup object, whose attributes are named maximumInfoLengthTransmit etc."""

    maxInfoTX = property(lambda self: self.maximumInfoLengthTransmit)  # noqa: N815
    maxInfoRX = property(lambda self: self.maximumInfoLengthReceive)  # noqa: N815
    windowSizeTX = property(lambda self: self.windowSizeTransmit)  # noqa: N815
    windowSizeRX = property(lambda self: self.windowSizeReceive)  # noqa: N815


class ImageTransfer(GXDLMSImageTransfer):
    """Gurux's class 18 object with its methods made to run."""

    def __init__(self, meter: GuruxMeter) -> None:
        super().__init__()
        self.meter = meter
        self.blocks: dict[int, bytes] = {}
        self.requests: list[tuple[int, object]] = []

    def invoke(self, settings: object, e: object) -> object:
        self.requests.append((e.index, e.parameters))
        if e.index == 1:  # image_transfer_initiate: gurux's own, then its one slip mended
            super().invoke(settings, e)
            # gurux: it appends the old image_activate_info list itself as an element.
            self.imageActivateInfo = [item for item in self.imageActivateInfo if not isinstance(item, list)]
            self.blocks = {}
            return None
        if e.index == 2:  # image_block_transfer
            # gurux: it calls .longValue() on an int and assigns into an immutable bytes copy of
            # the bit-string, and its imageData is None; the same steps, done so they run.
            number, block = int(e.parameters[0]), bytes(e.parameters[1])
            bits = list(self.imageTransferredBlocksStatus)
            bits[number] = "1"
            self.imageTransferredBlocksStatus = "".join(bits)
            self.imageFirstNotTransferredBlockNumber = number + 1
            self.blocks[number] = block
            self.imageTransferStatus = ImageTransferStatus.IMAGE_TRANSFER_INITIATED
            return None
        if e.index == 3:  # image_verify: gurux does nothing; the Blue Book's 3 or 4
            image = self.image()
            ok = image is not None and len(image) == self.imageSize
            self.imageTransferStatus = (ImageTransferStatus.IMAGE_VERIFICATION_SUCCESSFUL if ok
                                        else ImageTransferStatus.IMAGE_VERIFICATION_FAILED)
            if not ok:
                e.error = ErrorCode.OTHER_REASON
            return None
        if e.index == 4:  # image_activate: gurux does nothing; the image becomes the meter's
            if self.imageTransferStatus != ImageTransferStatus.IMAGE_VERIFICATION_SUCCESSFUL:
                e.error = ErrorCode.OTHER_REASON
                return None
            self.imageTransferStatus = ImageTransferStatus.IMAGE_ACTIVATION_SUCCESSFUL
            self.meter.activated = self.image()
            self.meter.revision.value = bytes(self.imageActivateInfo[-1].identification)
            return None
        return super().invoke(settings, e)

    def image(self) -> bytes | None:
        """The image the object holds, None while a block is missing."""
        count = len(self.imageTransferredBlocksStatus)
        if count == 0 or any(number not in self.blocks for number in range(count)):
            return None
        return b"".join(self.blocks[number] for number in range(count))


@pytest.fixture(autouse=True)
def _action_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """gurux: handleMethodRequest calls onPreAction(list(e)) on one ValueEventArgs, which is not iterable."""
    monkeypatch.setattr(ValueEventArgs, "__iter__", lambda self: iter([self]), raising=False)


class GuruxMeter(GXDLMSServer):
    """A meter of gurux's server classes: an LN association with LLS, the software revision
    (Kamstrup's 1.1.0.2.0.255, what meterlink confirms after the reboot) and the image transfer object."""

    def __init__(self) -> None:
        super().__init__(True, InterfaceType.HDLC)
        association = GXDLMSAssociationLogicalName()
        association.authenticationMechanismName.mechanismId = Authentication.LOW
        association.secret = PASSWORD
        self.revision = GXDLMSData("1.1.0.2.0.255")
        self.revision.value = REVISION_BEFORE
        self.image = ImageTransfer(self)
        self.activated: bytes | None = None
        self.received = bytearray()
        # gurux: initialize() appends the object collection to the association's object list
        # as one item, which the collection refuses; a filled list is left alone.
        for item in (association, self.revision, self.image):
            self.items.append(item)
            association.objectList.append(item)
        self.hdlc = HdlcSetup()
        # gurux: its inactivity check subtracts a datetime from an int.
        self.hdlc.inactivityTimeout = 0
        # gurux: handleSnrmRequest calls settings.hdlc.update(), which GXHdlcSettings names _update.
        self.settings.hdlc.update = lambda _: self.settings.hdlc._update(self.hdlc)
        self.initialize()

    def handleSnrmRequest(self, data: object) -> None:  # noqa: N802
        super().handleSnrmRequest(data)
        # gurux: it means to put the parameter group's length at offset 2 but calls
        # setUInt8(2, offset), writing 2 into the window size's high bytes instead.
        end = len(self.replyData)
        if self.replyData.getUInt8(2) != end - 3:
            self.replyData.setUInt8(0, end - 3)
            self.replyData.setUInt8(end - 3, 2)

    # gurux: the command handlers call these, which GXDLMSServer does not define.
    def notifyRead(self) -> None:  # noqa: N802
        pass

    def notifyConnected(self, info: object) -> None:  # noqa: N802
        self.onConnected(info)

    def getTransaction(self) -> object:  # noqa: N802
        return self.transaction

    def setTransaction(self, value: object) -> None:  # noqa: N802
        self.transaction = value

    # The abstract hooks, as a plain meter answers them.
    def isTarget(self, server_address: int, client_address: int) -> bool:  # noqa: N802
        return True

    def onValidateAuthentication(self, authentication: int, password: bytes) -> int:  # noqa: N802
        return SourceDiagnostic.NONE if bytes(password or b"") == PASSWORD else SourceDiagnostic.AUTHENTICATION_FAILURE

    def onGetAttributeAccess(self, arg: object) -> int:  # noqa: N802
        return AccessMode.READ_WRITE

    def onGetMethodAccess(self, arg: object) -> int:  # noqa: N802
        return MethodAccessMode.ACCESS

    def onFindObject(self, object_type: object, sn: int, ln: str) -> None:  # noqa: N802
        return None

    def onPostRead(self, args: object = None) -> None:  # noqa: N802 (gurux calls it without args too)
        pass

    def onPreGet(self, args: object) -> None: pass  # noqa: E704, N802
    def onPostGet(self, args: object) -> None: pass  # noqa: E704, N802
    def onPreRead(self, args: object) -> None: pass  # noqa: E704, N802
    def onPreWrite(self, args: object) -> None: pass  # noqa: E704, N802
    def onPostWrite(self, args: object) -> None: pass  # noqa: E704, N802
    def onPreAction(self, args: object) -> None: pass  # noqa: E704, N802
    def onPostAction(self, args: object) -> None: pass  # noqa: E704, N802
    def onConnected(self, info: object) -> None: pass  # noqa: E704, N802
    def onInvalidConnection(self, info: object) -> None: pass  # noqa: E704, N802
    def onDisconnected(self, info: object) -> None: pass  # noqa: E704, N802


@contextmanager
def serving(meter: GuruxMeter) -> Iterator[str]:
    """The meter on a TCP port (HDLC over TCP, as `--port tcp://` speaks it), one connection at a
    time in a thread; gurux's server is fed what arrives and its replies are sent back."""
    listener = socket.create_server(("127.0.0.1", 0))
    meter.received = bytearray()
    listener.settimeout(0.2)
    stop = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            meter.reset()
            with connection:
                connection.settimeout(0.2)
                while not stop.is_set():
                    try:
                        data = connection.recv(4096)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    meter.received += data
                    reply = Reply(data)
                    try:
                        meter.handleRequest(reply)
                    except Exception as error:  # noqa: BLE001 (the test reports it)
                        errors.append(error)
                        return
                    if reply.reply:
                        connection.sendall(bytes(reply.reply))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        assert not errors, errors


def test_meterlink_updates_the_image_of_gurux_class_18_object(tmp_path: Path):
    image = random.Random(18).randbytes(1500)
    firmware = tmp_path / "50981040-Q7.bin"
    firmware.write_bytes(image)
    meter = GuruxMeter()
    with serving(meter) as port:
        result = meterlink("image-transfer", "--port", port, "--password", PASSWORD.decode(), "--image", str(firmware),
                           timeout=120)
    verdict = json.loads(result.stdout)
    assert result.returncode == 0, (result.stderr.decode()[-2000:], verdict)
    assert verdict["result"] == "active" and verdict["identification"] == "50981040-Q7"
    assert verdict["blocks"] == 8 and verdict["blocks_resent"] == 0  # ceil(1500 / 200): gurux's block size
    assert verdict["revision_before"] == "50981040-Q1" and verdict["revision_after"] == "50981040-Q7"
    assert meter.activated == image
    assert meter.image.imageTransferStatus == ImageTransferStatus.IMAGE_ACTIVATION_SUCCESSFUL
    methods = [index for index, _ in meter.image.requests]
    assert methods == [1, *[2] * 8, 3, 4]  # initiate, every block once, verify, activate
    assert bytes(meter.image.requests[0][1][0]) == b"50981040-Q7" and meter.image.requests[0][1][1] == 1500
    assert not (tmp_path / "50981040-Q7.bin.transfer.json").exists()
    # 200-byte blocks in 128-byte fields: meterlink segmented them (format A8: segmentation bit set)
    assert meter.received.count(b"\x7e\xa8") >= 7
