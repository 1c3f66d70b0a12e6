from alpine as Base
run echo hi
copy . /src
