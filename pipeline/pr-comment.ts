/** The sticky pull-request comment: one per workflow run kind, found by its hidden marker and updated in place. */
import { getOctokit } from '@actions/github';

export type Octokit = ReturnType<typeof getOctokit>;

export interface StickyComment {
  owner: string;
  repo: string;
  issueNumber: number;
  /** The comment's hidden marker line (report.ts reportMarker); the body must contain it. */
  marker: string;
  body: string;
}

/** Updates the comment that carries `marker`, or creates it; a second run never adds a second comment. */
export async function upsertStickyComment(octokit: Octokit, c: StickyComment): Promise<{ id: number; action: 'created' | 'updated'; url: string }> {
  if (!c.body.includes(c.marker)) throw new Error('sticky comment body must contain its marker');
  const comments = await octokit.paginate(octokit.rest.issues.listComments, { owner: c.owner, repo: c.repo, issue_number: c.issueNumber, per_page: 100 });
  const existing = comments.find((comment) => comment.body?.includes(c.marker));
  if (existing) {
    const { data } = await octokit.rest.issues.updateComment({ owner: c.owner, repo: c.repo, comment_id: existing.id, body: c.body });
    return { id: data.id, action: 'updated', url: data.html_url };
  }
  const { data } = await octokit.rest.issues.createComment({ owner: c.owner, repo: c.repo, issue_number: c.issueNumber, body: c.body });
  return { id: data.id, action: 'created', url: data.html_url };
}
