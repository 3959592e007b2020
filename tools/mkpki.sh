#!/bin/sh
# Test PKI for the HAN link (bench and host tests only, never for the field):
#   ca          the test CA
#   gateway     the SMGW HAN server cert (CN 127.0.0.1, SAN IP 127.0.0.1 + DNS localhost)
#   device      the DICAMM client cert
#   rogue-ca    a second CA, and rogue-gateway signed by it
#   expired-gateway  signed by the test CA, validity in the past
#   rsa-gateway a gateway with an RSA-2048 key (signed by the test CA): a gateway that
#               TR-03116-3 does not allow, which the device must refuse
# Each as NAME.pem/NAME.der (certificate) and NAME.key.pem/NAME.key.der (key) on CURVE:
# prime256v1 (NIST P-256, the default) or brainpoolP256r1 / brainpoolP384r1 as in the
# SM-PKI (BSI TR-03116-3, 2.2 "Domainparameter fuer Elliptische Kurven").
# Usage: tools/mkpki.sh DIR [CURVE]
set -eu
DIR=${1:?usage: mkpki.sh DIR [CURVE]}
CURVE=${2:-prime256v1}
mkdir -p "$DIR"
cd "$DIR"
DAYS=3650

key() {  # NAME
    if [ "$1" = rsa-gateway ]; then
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key.pem" 2>/dev/null
    else
        openssl ecparam -name "$CURVE" -genkey -noout -out "$1.key.pem" 2>/dev/null
    fi
    openssl pkey -in "$1.key.pem" -outform DER -out "$1.key.der"
}

der() {  # NAME
    openssl x509 -in "$1.pem" -outform DER -out "$1.der"
}

ca() {  # NAME CN
    key "$1"
    openssl req -x509 -new -key "$1.key.pem" -sha256 -days $DAYS -subj "/O=DICAMM test/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1.pem"
    der "$1"
}

leaf() {  # NAME CN CA EXT [DATE-ARGS]
    name=$1 cn=$2 signer=$3 ext=$4
    shift 4
    key "$name"
    openssl req -new -key "$name.key.pem" -subj "/O=DICAMM test/CN=$cn" -out "$name.csr"
    printf '%s\n' "$ext" > "$name.ext"
    if [ $# -gt 0 ]; then
        # A certificate that is already expired: signed through `openssl ca` with explicit dates.
        mkdir -p "$name.db"
        : > "$name.db/index.txt"
        cat > "$name.cnf" <<CNF
[ca]
default_ca = x
[x]
database = $name.db/index.txt
new_certs_dir = $name.db
serial = $name.db/serial
default_md = sha256
policy = p
copy_extensions = none
[p]
commonName = supplied
organizationName = optional
CNF
        echo 1000 > "$name.db/serial"
        openssl ca -batch -config "$name.cnf" -cert "$signer.pem" -keyfile "$signer.key.pem" \
            -in "$name.csr" -out "$name.pem" -extfile "$name.ext" -notext "$@" 2>/dev/null
        rm -rf "$name.db" "$name.cnf"
    else
        openssl x509 -req -in "$name.csr" -CA "$signer.pem" -CAkey "$signer.key.pem" \
            -CAcreateserial -sha256 -days $DAYS -extfile "$name.ext" -out "$name.pem" 2>/dev/null
    fi
    rm -f "$name.csr" "$name.ext"
    der "$name"
}

SERVER_EXT="basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyAgreement
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
RSA_SERVER_EXT="basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
CLIENT_EXT="basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyAgreement
extendedKeyUsage=clientAuth"

ca ca "DICAMM test CA"
ca rogue-ca "Rogue CA"
leaf gateway 127.0.0.1 ca "$SERVER_EXT"
leaf device dicamm-device ca "$CLIENT_EXT"
leaf rogue-gateway 127.0.0.1 rogue-ca "$SERVER_EXT"
leaf expired-gateway 127.0.0.1 ca "$SERVER_EXT" -startdate 20200101000000Z -enddate 20210101000000Z
leaf rsa-gateway 127.0.0.1 ca "$RSA_SERVER_EXT"
rm -f ./*.srl
echo "$CURVE" > curve
echo "PKI ($CURVE) in $DIR"
