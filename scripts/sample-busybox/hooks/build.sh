#!/bin/sh
# Renders the front page with the ticket and commit this environment runs.
set -eu
sed -e "s|@TICKET@|${QABOX_TICKET}|g" \
    -e "s|@COMMIT@|${QABOX_COMMIT}|g" \
    -e "s|@SOURCE@|${QABOX_SOURCE_BRANCH}|g" \
    -e "s|@TARGET@|${QABOX_TARGET_BRANCH}|g" \
    -e "s|@URL@|${QABOX_URL}|g" \
    www/index.html.in > www/index.html
echo ok > www/health.txt
echo "built page for ${QABOX_TICKET} at ${QABOX_COMMIT}"
