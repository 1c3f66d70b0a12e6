#!/bin/sh
# build.sh VERSION OUT: "compiles" the tool from src/ into OUT.
set -eu
version=$1 out=$2
mkdir -p "$out/bin" "$out/share/templates"
sed "s/@VERSION@/$version/g" src/tool.in > "$out/bin/tool"
chmod 0755 "$out/bin/tool"
ln -s tool "$out/bin/tool-compat"
for t in src/templates/*.tmpl; do
  tr 'a-z' 'A-Z' < "$t" > "$out/share/templates/$(basename "$t" .tmpl).txt"
done
printf '%s\n' "$version" > "$out/VERSION"
# A reproducible archive: fixed order, owners and times, no gzip timestamp.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$out" -cf - share VERSION |
  gzip -n > "$out/tool.tar.gz"
