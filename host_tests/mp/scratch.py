# A scratch folder for the dual tests: emptied, or made; under /tmp on a host,
# at the flash root on a board (which has no /tmp).
import os


def fresh_dir(prefix, name):
    try:
        os.stat("/tmp")
        d = "/tmp/%s_%s" % (prefix, name)
    except OSError:  # a board: the flash root
        d = "/%s_%s" % (prefix, name)
    try:
        for f in os.listdir(d):
            os.remove(d + "/" + f)
    except OSError:
        os.mkdir(d)
    return d
