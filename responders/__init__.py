"""Incident response as pure functions: correlation, lifecycle, paging and MTTR folds.

Pure: no Kafka, no clock (``now`` is always an argument), no environment, no network.
"""
