// API docs page: starts the vendored Swagger UI on the server's own OpenAPI document.
// Kept out of the HTML so the page works under a CSP that forbids inline script.
const root = document.getElementById("swagger-ui");
window.SwaggerUIBundle({ url: root.dataset.specUrl, domNode: root, deepLinking: true });
