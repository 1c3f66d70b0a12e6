mkdir -p /app/bin
printf '#!/bin/sh\necho "api serving with %s deps"\n' "$(ls /app/deps | wc -l)" > /app/bin/api
chmod 755 /app/bin/api
