"""Models from other toolkits: reading their files, converting, checking against their equations."""
