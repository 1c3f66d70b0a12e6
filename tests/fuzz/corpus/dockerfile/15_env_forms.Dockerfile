FROM alpine
ENV A=1 B="two words" C='single $A' D="dq $A"
ENV E=esc\ aped F=${A}x
