module.exports = { e2e: { baseUrl: 'http://localhost:8081' } };
