#!/bin/sh
# Seeds the data the front page shows.
set -eu
printf '%s\n' "apples 3" "pears 5" "plums 8" > /var/lib/sample/fruit.txt
cp /var/lib/sample/fruit.txt www/seed.txt
rows=$(tr '\n' ';' < /var/lib/sample/fruit.txt)
sed -i "s|@SEED@|${rows}|" www/index.html
echo "seeded $(wc -l < /var/lib/sample/fruit.txt) rows"
