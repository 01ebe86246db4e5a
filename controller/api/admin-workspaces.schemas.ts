import { z } from '@hono/zod-openapi';
import type { Workspace as WorkspaceView, WorkspaceDetail as WorkspaceDetailView, WorkspaceMember } from '../users/workspaces.service.js';
import { dateTime, iso, pathId, singleLine } from './schemas.js';

// Schemas and JSON views of workspaces and their members, for `/admin/workspaces`.

const UserId = z.number().int().positive('must be a positive integer').max(2_147_483_647);

export const CreateWorkspaceBody = z.object({
  name: singleLine(z.string().trim().min(1, 'must not be empty').max(64, 'must be at most 64 characters')).openapi({ example: 'vision-team' }),
  owner_id: UserId.openapi({ description: 'becomes a member with role owner' }),
});

export const AddMemberBody = z.object({ user_id: UserId });

export const Workspace = z
  .object({
    id: z.number().int(),
    name: z.string(),
    owner_id: z.number().int(),
    member_count: z.number().int(),
    created_at: dateTime(),
  })
  .openapi('Workspace');

export const Member = z
  .object({
    user_id: z.number().int(),
    name: z.string(),
    role: z.enum(['owner', 'member']),
    created_at: dateTime(),
  })
  .openapi('WorkspaceMember');

export const WorkspaceDetail = Workspace.extend({ members: z.array(Member) }).openapi('WorkspaceDetail');

export const WorkspaceParams = z.object({ workspace_id: pathId('workspace_id') });
export const MemberParams = z.object({ workspace_id: pathId('workspace_id'), user_id: pathId('user_id') });

/** The API view of a workspace in a listing. */
export function workspaceJson(w: WorkspaceView) {
  return { id: w.id, name: w.name, owner_id: w.owner_id, member_count: w.member_count, created_at: iso(w.created_at) };
}

/** The API view of a member. */
export function memberJson(m: WorkspaceMember) {
  return { user_id: m.user_id, name: m.name, role: m.role, created_at: iso(m.created_at) };
}

/** The API view of a workspace with its members. */
export function detailJson(w: WorkspaceDetailView) {
  return { ...workspaceJson(w), members: w.members.map(memberJson) };
}
