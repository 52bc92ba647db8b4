"""vosapp: a softswitch lab appliance reproducing VOS3000 SIP behaviour."""

from vosapp import compiled

# before any compiled module can be imported: never a stale build (see vosapp.compiled)
compiled.install()

__version__ = "0.1.0"
