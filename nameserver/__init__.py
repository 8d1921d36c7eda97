"""nameserverd: an authoritative DNS server that listens on every address and always answers
from the address it was asked on."""

__version__ = "0.1.0"
