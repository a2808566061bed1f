"""`segue setup` and `segue doctor`: put Segue's companions into a DAW's folders, take them out
again, and check that everything a first clip needs is in place.

    locations.py   where Live's Remote Scripts and REAPER's resource folder are on each system
    changes.py     a set of file changes applied all-or-nothing, backed up first, undone by uninstall
    abletonosc.py  AbletonOSC at a pinned commit: download, content check, Segue's patch
    ableton.py     the plan for Live;  reaper.py  the plan for REAPER
    processes.py   which programs run, and which process holds a UDP port
    doctor.py      the checks behind `segue doctor` and the panel's Setup page
"""
