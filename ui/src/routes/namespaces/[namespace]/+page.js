import { fetchNamespace } from '@temporalio/ui/services/namespaces-service';

export async function load({ params, parent }) {
  const { settings } = await parent();
  return { namespace: await fetchNamespace(params.namespace, settings) };
}
