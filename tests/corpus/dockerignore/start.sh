node src/index.js
