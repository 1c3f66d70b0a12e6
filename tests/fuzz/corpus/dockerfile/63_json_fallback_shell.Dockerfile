FROM alpine
RUN [ -f /etc/os-release ] && echo yes
CMD ["unterminated"
ENTRYPOINT ["a" "b"]
