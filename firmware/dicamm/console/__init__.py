# The installer's console: the dispatcher (cli), its line editor, the command
# groups (cli_*) and the long commands (wizard, selftest, scan, relaytest),
# loaded per command and dropped again after it (console/table.py).
