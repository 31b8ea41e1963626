#!/bin/sh
# Build one release on the control node: the shop's wheel plus a wheel of every
# pinned dependency for the hosts' Python and platform (which may differ from
# the control node's: markers such as python_full_version are evaluated for the
# hosts), packed as one tarball.
# Usage: build-release.sh PYTHON SOURCE_DIR TARBALL TARGET_PYTHON_VERSION TARGET_GLIBC TARGET_ARCH
#   (TARGET_GLIBC like 2.36: every manylinux tag up to it is accepted)
set -eu
python=$1
source_dir=$2
tarball=$3
target_python=$4
target_glibc=$5
target_arch=$6
uv="$(dirname "$python")/uv"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# what the hosts need, resolved for them and held to the repository's pins
"$uv" pip compile --quiet --no-header --no-annotate \
  --python-version "$target_python" \
  --python-platform "${target_arch}-manylinux_$(echo "$target_glibc" | tr . _)" \
  --constraint "$source_dir/requirements.lock" \
  --output-file "$work/requirements.txt" "$source_dir/pyproject.toml"

platforms="--platform any --platform manylinux2014_$target_arch --platform manylinux2010_$target_arch --platform manylinux1_$target_arch"
minor=5
while [ "$minor" -le "$(echo "$target_glibc" | cut -d. -f2)" ]; do
  platforms="$platforms --platform manylinux_2_${minor}_$target_arch"
  minor=$((minor + 1))
done
pip="$python -m pip --disable-pip-version-check --quiet"
# setuptools builds in the tree and reuses build/lib: a module deleted from the
# source would live on in every later wheel, so start from an empty build dir.
rm -rf "$source_dir/build"
$pip wheel --no-deps --wheel-dir "$work/wheels" "$source_dir"
# shellcheck disable=SC2086 # $platforms is a list of flags
$pip download --no-deps --only-binary=:all: \
  --python-version "$target_python" --implementation cp \
  --abi "cp$(echo "$target_python" | cut -d. -f1,2 | tr -d .)" --abi abi3 --abi none \
  $platforms --dest "$work/wheels" --requirement "$work/requirements.txt"
mkdir -p "$(dirname "$tarball")"
tar -C "$work" -czf "$tarball.partial" wheels
mv "$tarball.partial" "$tarball"
