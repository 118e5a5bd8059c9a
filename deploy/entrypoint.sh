#!/bin/sh
# Secrets arrive as files (/run/secrets/…), never as image layers or `docker inspect`-able variables:
# for every TINBAO_X_FILE given, TINBAO_X is read from that file, then tinbao runs with them.
set -eu
for name in $(env | sed -n 's/^\(TINBAO_[A-Z_]*\)_FILE=.*/\1/p'); do
    eval "file=\${${name}_FILE}"
    if [ ! -r "$file" ]; then
        echo "tinbao: ${name}_FILE: cannot read $file (is the secret mounted, readable by uid $(id -u)?)" >&2
        exit 2
    fi
    export "$name=$(cat "$file")"
    unset "${name}_FILE"
done
exec tinbao "$@"
