# The asyncio application: one supervised task per concern (metering, load
# profile, control, time, TAF16 outbox, MQTT), the command door shared by the
# console and MQTT, and app.py, which wires them from config and board.
