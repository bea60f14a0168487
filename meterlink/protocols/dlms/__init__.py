"""The DLMS/COSEM codec shared by the M-Bus push and the HDLC client links.

axdr: COSEM Data in A-XDR; cosem: date-time; security: general-glo/ded-ciphering (AES-128-GCM);
notification: the data-notification APDU and its mapping to readings.
"""
