"""Analysis stage: profiles (NAPs/GradNAPs), maps and regions, topography statistics, filter statistics.

Computation only: every function returns arrays, dataclasses or plain dicts; plotting lives in
:mod:`toposcope.viz` and the HTML report in :mod:`toposcope.report`.
"""
