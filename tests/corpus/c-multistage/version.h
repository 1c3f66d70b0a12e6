#define HELLO_VERSION "1.0.3"
