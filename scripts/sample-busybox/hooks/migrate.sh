#!/bin/sh
# Stands in for a schema migration: the data directory and its version.
set -eu
mkdir -p /var/lib/sample
echo "schema 1" > /var/lib/sample/schema
echo "migrated to schema 1"
