echo "worker $(cat /app/VERSION)"
