# Drivers and transports: serial ports, Modbus, meter, relay, storage, config,
# clock, network clients. Hardware objects are passed in (hw.py builds them
# from a board's pin table); nothing here imports services or the console.
