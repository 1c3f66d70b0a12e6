FROM alpine
RUN <<'EOF' bash
echo "$HOME"
EOF
RUN <<"X"
literal $Y
X
