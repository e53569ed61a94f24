import { redirect } from '@sveltejs/kit';
import { routeForWorkflows } from '@temporalio/ui/utilities/route-for';

// Task queues are reached from a workflow; their list is the workflows page.
export function load({ params }) {
  redirect(302, routeForWorkflows({ namespace: params.namespace }));
}
