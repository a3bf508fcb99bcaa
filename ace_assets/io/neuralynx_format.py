"""The Neuralynx binary layout (.ncs / .nev), shared by the reader and the demo writer."""

from __future__ import annotations

import numpy as np

HEADER_SIZE = 16384
NCS_RECORD_SIZE = 1044
NEV_RECORD_SIZE = 184
SAMPLES_PER_RECORD = 512
HEADER_MAGIC = "########"
NCS_DTYPE = np.dtype(
    [
        ("timestamp", "<u8"),
        ("channel_id", "<u4"),
        ("sample_rate", "<u4"),
        ("nb_valid", "<u4"),
        ("samples", "<i2", (SAMPLES_PER_RECORD,)),
    ]
)
NEV_DTYPE = np.dtype(
    [
        ("nstx", "<i2"),
        ("npkt_id", "<i2"),
        ("npkt_data_size", "<i2"),
        ("timestamp", "<u8"),
        ("event_id", "<i2"),
        ("ttl", "<u2"),
        ("crc", "<i2"),
        ("dummy1", "<i2"),
        ("dummy2", "<i2"),
        ("extra", "<i4", (8,)),
        ("event_string", "S128"),
    ]
)

assert NCS_DTYPE.itemsize == NCS_RECORD_SIZE and NEV_DTYPE.itemsize == NEV_RECORD_SIZE
