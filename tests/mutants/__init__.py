"""The mutation gate: deliberate errors in theory/ and numeric/ that ``vitconv verify --quick``
must reject (``make mutants``)."""
