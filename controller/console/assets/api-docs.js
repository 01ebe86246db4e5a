// The /api/docs page's Swagger UI (loaded after /assets/swagger-ui/swagger-ui-bundle.js): the
// console's CSP allows no inline script, so the initializer is this file. Nothing is fetched from
// another host: no online validator, no remote spec.
(function () {
  'use strict';
  var root = document.getElementById('swagger-ui');
  var csrf = document.querySelector('meta[name="csrf-token"]');
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute('data-spec-url'),
    domNode: root,
    deepLinking: true,
    layout: 'BaseLayout',
    presets: [window.SwaggerUIBundle.presets.apis],
    validatorUrl: null,
    // The token given to "Authorize" stays in this page's memory only (not in localStorage).
    persistAuthorization: false,
    requestInterceptor: function (req) {
      // A signed-in browser also sends its session cookie: a write authenticated by it needs the
      // session's CSRF token (a bearer token given to "Authorize" takes precedence anyway).
      if (csrf) req.headers['X-CSRF-Token'] = csrf.getAttribute('content');
      return req;
    },
  });
})();
