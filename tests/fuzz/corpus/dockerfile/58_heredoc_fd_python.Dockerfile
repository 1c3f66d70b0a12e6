FROM python:3
RUN 3<<EOF python3 /dev/fd/3
print('hi')
EOF
RUN python3 <<EOF
import sys
EOF
