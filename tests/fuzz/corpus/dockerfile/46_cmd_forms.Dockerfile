FROM alpine
CMD echo "hello $HOME"
CMD ["echo", "$HOME"]
CMD ["--port", "80"]
