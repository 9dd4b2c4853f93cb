"""File formats: SEG-Y/SU ingest and trace index (``segy``, ``index``), HDF5 volumes
(``volume``), exports (``export``)."""
