"""``astrogym/TelescopeNetwork-v0``: telescopes at separated sites share one target pool and targets of opportunity."""
