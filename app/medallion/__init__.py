"""The reference bronze → silver → gold pipeline (`fleetgen pipeline`): the dictionary's silver rules
and `fleetgen expect`'s gold tables, applied incrementally to committed bronze batches, each exactly once."""
