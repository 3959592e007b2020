# HTTP/1.1 pieces that the HAN client and the update download share (pure):
# the URL, a response head's status and headers (RFC 9112 sections 4 and 5),
# and a GET request. The HAN's POST and answer rules are proto/han_wire.py.
from dicamm.errors import LinkError


def parse_url(url):
    # "https://host:port/path" -> (scheme, host, port, path)
    i = url.find("://")
    if i < 0:
        raise LinkError("bad URL %r" % url)
    scheme = url[:i]
    rest = url[i + 3:]
    j = rest.find("/")
    hostport, path = (rest, "/") if j < 0 else (rest[:j], rest[j:])
    if ":" in hostport:
        host, port = hostport.rsplit(":", 1)
        try:
            port = int(port)
        except ValueError:
            raise LinkError("bad port in URL %r" % url)
    else:
        host, port = hostport, (443 if scheme == "https" else 80)
    if scheme not in ("http", "https"):
        raise LinkError("bad URL scheme %r" % scheme)
    if not host:
        raise LinkError("no host in URL %r" % url)
    return scheme, host, port, path


def headers(head):
    # -> (status line words, {lower-case name: value}) of a response head.
    lines = head.split(b"\r\n")
    hs = {}
    for h in lines[1:]:
        k, _, v = h.partition(b":")
        hs[k.strip().lower()] = v.strip()
    return lines[0].split(), hs


def status(line):
    # The status code of a status line's words, or LinkError.
    if len(line) < 2 or not line[0].startswith(b"HTTP/"):
        raise LinkError("not an HTTP answer")
    try:
        return int(line[1])
    except ValueError:
        raise LinkError("bad HTTP status line")


def content_length(hs):
    # The Content-Length of the headers, None when absent, LinkError when bad.
    n = hs.get(b"content-length")
    if n is None:
        return None
    try:
        n = int(n)
    except ValueError:
        n = -1
    if n < 0:
        raise LinkError("bad Content-Length")
    return n


def get_request(host, port, path):
    # One GET on a connection that the server closes after its answer.
    return ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            % (path, host, port)).encode()
