"""Recordings: ``recording`` (ABF with pyabf, AxoGraph and NWB through neo and pynwb, behind one
``Recording``), ``formats`` (telling formats apart, raphe's own results files), ``contents`` (what a
file holds, for `raphe info`) and ``player`` (publishing a recording, paced, on the Open Ephys ZMQ
protocol). Nothing here knows the classifier."""
