"""vosapp: a softswitch lab appliance reproducing VOS3000 SIP behaviour."""

__version__ = "0.1.0"
