import { OpenAPIHono, createRoute } from '@hono/zod-openapi';
import { adminOnly } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { ActionResult, Host, HostDetailSchema, HostParams, ListQuery, RemoveHostQuery, hostDetailJson, hostJson } from './admin-hosts.schemas.js';
import { NoContent, envelope, errors, jsonResponse, noContent, pageEnvelope, pageRequest, paginated, reply, replyMessage } from './schemas.js';

const tags = ['admin: hosts'];

const routes = {
  list: createRoute({
    method: 'get',
    path: '/admin/hosts',
    tags,
    operationId: 'adminListHosts',
    summary: 'List hosts with capacity, allocation and health',
    request: { query: ListQuery },
    responses: { 200: jsonResponse(pageEnvelope(Host), 'one page of hosts, by hostname'), ...errors(400, 401, 403) },
  }),
  get: createRoute({
    method: 'get',
    path: '/admin/hosts/{host_id}',
    tags,
    operationId: 'adminGetHost',
    summary: 'Get a host with its GPUs and the environment holding each',
    request: { params: HostParams },
    responses: { 200: jsonResponse(envelope(HostDetailSchema), 'the host'), ...errors(400, 401, 403, 404) },
  }),
  approve: createRoute({
    method: 'post',
    path: '/admin/hosts/{host_id}/approve',
    tags,
    operationId: 'adminApproveHost',
    summary: 'Approve a host registered with a join token that requires approval',
    description: 'The host leaves pending_approval and takes placements. Idempotent: an approved host is answered unchanged.',
    request: { params: HostParams },
    responses: { 200: jsonResponse(envelope(HostDetailSchema), 'the host'), ...errors(400, 401, 403, 404) },
  }),
  revoke: createRoute({
    method: 'post',
    path: '/admin/hosts/{host_id}/revoke',
    tags,
    operationId: 'adminRevokeHost',
    summary: 'Revoke a host: its certificates stop working at once',
    description:
      'For a compromised host, also while environments are on it: every certificate issued to it is refused from now on, the controller stops calling its agent, the host is no longer approved and goes offline (its environments become lost). The server must be reset (`remotegpu-agent reset`) and join again as a new host.',
    request: { params: HostParams },
    responses: { 200: jsonResponse(envelope(HostDetailSchema), 'the host'), ...errors(400, 401, 403, 404) },
  }),
  remove: createRoute({
    method: 'delete',
    path: '/admin/hosts/{host_id}',
    tags,
    operationId: 'adminRemoveHost',
    summary: 'Remove a host',
    description:
      'Refused (409, 40901) while environments are on the host: those not deleted, and deleted ones whose removal its agent has not confirmed yet. With force=true, a host that is gone for good is removed although such removals are pending: they are given up (an event in each environment says its container and data may remain on that server). An agent still running there registers as a new host.',
    request: { params: HostParams, query: RemoveHostQuery },
    responses: { 204: NoContent, ...errors(400, 401, 403, 404, 409) },
  }),
};

const ACTION_OPERATION_IDS = { cordon: 'adminCordonHost', uncordon: 'adminUncordonHost', drain: 'adminDrainHost' } as const;

/** `POST /admin/hosts/{host_id}/<verb>`: one route per admin action on a host. */
function actionRoute(verb: 'cordon' | 'uncordon' | 'drain', summary: string) {
  return createRoute({
    method: 'post',
    path: `/admin/hosts/{host_id}/${verb}`,
    tags,
    operationId: ACTION_OPERATION_IDS[verb],
    summary,
    request: { params: HostParams },
    responses: { 200: jsonResponse(ActionResult, 'done (idempotent)'), ...errors(400, 401, 403, 404) },
  });
}

/** `/admin/hosts`: the host listing, detail, approve, revoke, cordon, uncordon, drain and remove (admin only). */
export function adminHostsRoutes({ services }: ApiDeps) {
  const { hosts } = services;
  const middleware = adminOnly(services.users);
  const app = new OpenAPIHono<AppEnv>();

  app.openapi({ ...routes.list, middleware }, async (c) => {
    const q = c.req.valid('query');
    const request = pageRequest(q);
    return reply(c, paginated(await hosts.list({ status: q.status, gpuModel: q.gpu_model }, request), request, hostJson));
  });
  app.openapi({ ...routes.get, middleware }, async (c) => reply(c, hostDetailJson(await hosts.get(c.req.valid('param').host_id))));
  app.openapi({ ...routes.approve, middleware }, async (c) => reply(c, hostDetailJson(await hosts.approve(c.req.valid('param').host_id)), 'host_approved'));
  app.openapi({ ...routes.revoke, middleware }, async (c) => reply(c, hostDetailJson(await hosts.revoke(c.req.valid('param').host_id)), 'host_revoked'));

  const actions = [
    { verb: 'cordon', summary: 'Stop placing new environments on a host', message: 'host_cordoned', run: (id: string) => hosts.cordon(id) },
    { verb: 'uncordon', summary: 'Place environments on a host again', message: 'host_uncordoned', run: (id: string) => hosts.uncordon(id) },
    {
      verb: 'drain',
      summary: 'Drain a host: no new placements; its environments keep running until stopped or deleted',
      message: 'host_draining',
      run: (id: string) => hosts.drain(id),
    },
  ] as const;
  for (const action of actions) {
    app.openapi({ ...actionRoute(action.verb, action.summary), middleware }, async (c) => {
      await action.run(c.req.valid('param').host_id);
      return replyMessage(c, action.message);
    });
  }

  app.openapi({ ...routes.remove, middleware }, async (c) => {
    await hosts.remove(c.req.valid('param').host_id, { force: c.req.valid('query').force });
    return noContent(c);
  });

  return app;
}
