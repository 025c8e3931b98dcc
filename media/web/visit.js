// visit.js
