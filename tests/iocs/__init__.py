"""IOCs written the way ordinary EPICS IOCs behave (caproto ``PVGroup``s), not by QDLab: what a
lab's existing instruments look like over Channel Access."""
