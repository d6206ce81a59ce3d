"""The CMDB external pillar's core: snapshot, cache, outage handling, build, live slots (docs/pillar.md)."""
