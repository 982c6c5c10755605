t
t
