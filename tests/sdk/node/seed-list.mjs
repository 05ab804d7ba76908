import { WorkOS } from '@workos-inc/node';

const workos = new WorkOS('sk_example_123456789');

const authFactors = await workos.userManagement.listAuthFactors({
  userId: 'user_01E4ZCR3C56J083X43JQXF3JK5',
});

console.log(authFactors.data);
