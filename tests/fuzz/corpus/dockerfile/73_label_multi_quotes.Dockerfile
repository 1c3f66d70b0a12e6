FROM alpine
LABEL a="x y" 'b c'="d" e=f\ g
