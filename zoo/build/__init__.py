"""Building models: components from their registrations (configs captured), compositions
from registry names or parts, rebuilding from a saved config, adapters. Knows no file
format and no network: persistence (:mod:`zoo.io`) builds on this, never the reverse."""
